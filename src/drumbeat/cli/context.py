"""What the global options give every command: settings and, on demand, a client.

Nothing heavy is imported at the top: `drumbeat --help` loads every command module."""

from __future__ import annotations

import atexit
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from drumbeat.client import Drumbeat
    from drumbeat.config import Settings
    from drumbeat.store.readonly import ReadOnlyStore


@dataclass
class State:
    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    workspace: str | None = None
    batch_size: int | None = None
    _client: Any = field(default=None, repr=False)
    _settings: Any = field(default=None, repr=False)
    _recorder: Any = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The settings (read once), and the logs set up as they say."""
        if self._settings is None:
            from drumbeat.config import settings
            from drumbeat.logs import configure

            self._settings = settings(
                database_url=self.database_url,
                redis_url=self.redis_url,
                broker_url=self.broker_url,
                workspace=self.workspace,
                batch_size=self.batch_size,
            )
            configure(self._settings.log_format, self._settings.log_level)
        return self._settings  # type: ignore[no-any-return]

    def readonly(self) -> tuple[ReadOnlyStore, int] | None:
        """For a command that only reads: the store through the plain driver and the
        workspace's id, found without pydantic or SQLAlchemy (the only settings read are
        the store's URL and the workspace); None when the store is not ready as it stands
        (store/readonly.py) or another option was given (the full settings check it), and
        the command opens its client instead."""
        from drumbeat.env_settings import DATABASE_URL, WORKSPACE, from_env
        from drumbeat.store.readonly import open_readonly

        if (self.redis_url, self.broker_url, self.batch_size) != (None, None, None):
            return None
        url = self.database_url
        store = open_readonly(from_env("DATABASE_URL", DATABASE_URL) if url is None else url)
        if store is None:
            return None
        name = self.workspace
        ws = store.workspace_id(from_env("WORKSPACE", WORKSPACE) if name is None else name)
        if ws is None:
            store.close()
            return None
        return store, ws

    def client(self) -> Drumbeat:
        if self._client is None:
            from drumbeat.client import Drumbeat

            self._client = Drumbeat(config=self.settings())
            atexit.register(self._client.close)  # after the recorder's last write
        return self._client  # type: ignore[no-any-return]

    def record_timings(self) -> None:
        """Write this process's query and stage timings into the store until it exits
        (drumbeat.recorder): the commands that work call this, `drumbeat stats` reads them."""
        if self._recorder is None:
            from drumbeat.recorder import Recorder

            config = self.settings()
            self._recorder = Recorder(
                self.client().store,
                every=config.stats_flush_seconds,
                keep=config.stats_keep_days * 86400,
            )
            atexit.register(self._recorder.close)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def client(ctx: typer.Context) -> Drumbeat:
    """The command's client (one per process), opened on first use."""
    return state(ctx).client()
