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

    def client(self) -> Drumbeat:
        if self._client is None:
            from drumbeat.client import Drumbeat

            self._client = Drumbeat(config=self.settings())
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
