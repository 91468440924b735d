"""What the global options give every command: settings and, on demand, a client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer

from drumbeat.config import Settings, settings


@dataclass
class State:
    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    workspace: str | None = None
    batch_size: int | None = None
    _client: Any = field(default=None, repr=False)

    def settings(self) -> Settings:
        return settings(
            database_url=self.database_url,
            redis_url=self.redis_url,
            broker_url=self.broker_url,
            workspace=self.workspace,
            batch_size=self.batch_size,
        )

    def client(self) -> Any:
        if self._client is None:
            from drumbeat.client import Drumbeat

            self._client = Drumbeat(config=self.settings())
        return self._client


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj
