"""The Python API: `Drumbeat(...)` identifies users, tracks events and previews audiences.

Its methods come in parts, by concern, that the class joins: data in (client_ingest.py),
users, their inbox and audiences (client_users.py), and the work: outbox, batches, members,
retries and `advance` (client_operations.py); campaigns are `Drumbeat.campaigns`
(campaign_api.py)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from drumbeat.client_ingest import Ingestion
from drumbeat.client_operations import Operations
from drumbeat.client_state import Clock
from drumbeat.client_users import UserAccess
from drumbeat.config import Settings, settings
from drumbeat.pipeline.clock import StoreClock
from drumbeat.store import Store, open_configured

if TYPE_CHECKING:
    from drumbeat.campaign_api import Campaigns


class Drumbeat(Ingestion, UserAccess, Operations):
    """One workspace of one store. `clock` returns epoch seconds; by default the store's
    virtual clock if one is set, else the real one."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        workspace: str | None = None,
        batch_size: int | None = None,
        config: Settings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or settings(
            database_url=database_url, workspace=workspace, batch_size=batch_size
        )
        self.store: Store = open_configured(self.config)
        # the store's virtual clock when one is set (`drumbeat advance`), else real time
        self.clock: Clock = clock or StoreClock(self.store)
        self.ws = self.store.workspace_id(self.config.workspace, now=self.clock())

    @classmethod
    def attached(cls, store: Store, ws: int, config: Settings, clock: Clock) -> Drumbeat:
        """A client of workspace `ws` on a store already open (the HTTP API makes one a
        request on its server's store); closing it would close that store: don't."""
        client = cls.__new__(cls)
        client.config = config.model_copy(update={"workspace": store.workspace_name(ws)})
        client.store, client.clock, client.ws = store, clock, ws
        return client

    def close(self) -> None:
        self.store.close()

    @cached_property
    def campaigns(self) -> Campaigns:
        """Campaign definitions: check, apply, list, show, pause, resume, archive."""
        from drumbeat.campaign_api import Campaigns  # templates and YAML: on first use

        return Campaigns(self)

    def __enter__(self) -> Drumbeat:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
