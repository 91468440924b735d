"""A small world for campaign tests: a real store (SQLite or PostgreSQL), one workspace, a
virtual clock, and the whole flow (planner → workers → dispatcher) ticking on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from drumbeat.campaigns import apply, plan_apply
from drumbeat.client import Drumbeat
from drumbeat.config import settings
from drumbeat.engine.member import Member
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.clock import StoreClock
from drumbeat.pipeline.programs import CAP_SETTING
from drumbeat.pipeline.runner import Runner, TickReport

DAY = 86400.0
HOUR = 3600.0
MONDAY = 1_767_571_200.0  # 2026-01-05T00:00:00Z


class World:
    def __init__(
        self,
        database_url: str,
        workspace: str,
        tmp: Path,
        start: float = MONDAY,
        *,
        broker_url: str | None = None,
    ):
        self.config = settings(
            database_url=database_url,
            workspace=workspace,
            outbox_file=str(tmp / "messages.jsonl"),
            broker_url=broker_url,
        )
        self.db = Drumbeat(config=self.config)
        self.store, self.ws = self.db.store, self.db.ws
        self.clock = StoreClock(self.store)
        self.clock.set(start)
        self.db.clock = self.clock
        self.runner = Runner(self.store, self.config, self.clock)
        self.messages_file = tmp / "messages.jsonl"

    def ticks_only(self) -> None:
        """Leave every identify and track to the next tick, as calls too big for the event
        path are (tests of what the planner finds; the event path: test_event_path.py)."""
        self.db.event_path.max_users = 0

    def now(self) -> float:
        return self.clock()

    def identify(self, user_id: str, **traits: Any) -> None:
        self.db.identify(user_id, traits)

    def track(self, user_id: str, event: str, **properties: Any) -> None:
        self.db.track(user_id, event, properties)

    def apply(self, definition: dict[str, Any], *, activate: bool = True) -> int:
        campaign = parse_campaign(definition)
        return apply(
            plan_apply(campaign, self.store, self.ws),
            self.store,
            self.ws,
            self.now(),
            activate=activate,
        )

    def cap(self, limit: int, per: float) -> None:
        self.store.set_setting(self.ws, CAP_SETTING, {"limit": limit, "per": per})

    def tick(self) -> TickReport:
        return self.runner.tick(self.now())

    def advance(self, seconds: float, every: float = HOUR) -> list[TickReport]:
        return self.runner.advance(self.now() + seconds, every)

    def member(self, key: str, user_id: str) -> Member | None:
        return self.store.load_members(self.ws, key, [user_id]).get(user_id)

    def outbox(self, **filters: Any) -> list[dict[str, Any]]:
        return self.store.outbox_rows(self.ws, **filters)

    def steps_sent(self, user_id: str) -> list[str]:
        return [r["step_id"] for r in self.outbox() if r["user_id"] == user_id]

    def delivered(self) -> list[dict[str, Any]]:
        """What the file channel (email in a dry run) wrote."""
        if not self.messages_file.exists():
            return []
        return [orjson.loads(line) for line in self.messages_file.read_bytes().splitlines()]

    def close(self) -> None:
        self.runner.close()
        self.db.close()
