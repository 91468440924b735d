"""The demo's story: a synthetic SaaS user base, three example campaigns, and 60 simulated
days in which users keep logging in, viewing pricing and upgrading, while the flow ticks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from drumbeat.campaigns import apply, plan_apply, read_campaign
from drumbeat.client import Drumbeat
from drumbeat.demo.data import DEMO_NOW, load_demo_data
from drumbeat.demo.synthetic import timed_future_events
from drumbeat.pipeline.clock import StoreClock
from drumbeat.pipeline.runner import Runner, TickReport

CAMPAIGNS = ("onboarding.yaml", "trial-to-paid.yaml", "win-back.yaml")
DAY = 86400.0


def campaign_path(name: str) -> Path:
    return Path(str(files("drumbeat.demo") / "campaigns" / name))


@dataclass
class Story:
    users: int
    events: int = 0
    activity: int = 0
    ticks: list[TickReport] = field(default_factory=list)


class Replay:
    """Future user activity, handed out tick by tick in time order."""

    def __init__(self, client: Drumbeat, users: int, seed: int, start: float, days: int):
        self.client = client
        self.pending = timed_future_events(users, seed=seed, start=start, days=days)
        self.head: tuple[int, dict[str, Any]] | None = next(self.pending, None)
        self.count = 0

    def until(self, _start: float, end: float) -> None:
        """Identify and track every activity up to `end`, in bulk."""
        due = []
        while self.head is not None and self.head[0] <= end:
            due.append(self.head[1])
            self.head = next(self.pending, None)
        if not due:
            return
        traits = [{"user_id": e["user_id"], "traits": e["traits"]} for e in due if e.get("traits")]
        if traits:
            self.client.identify_many(traits)
        self.client.track_many({k: v for k, v in e.items() if k != "traits"} for e in due)
        self.count += len(due)


def tell(
    client: Drumbeat,
    runner: Runner,
    *,
    users: int,
    seed: int,
    days: int,
    every: float,
    progress: Callable[[str, int], None] | None = None,
) -> Story:
    clock = runner.clock
    assert isinstance(clock, StoreClock)
    clock.set(DEMO_NOW)
    _, events = load_demo_data(client, users, seed, progress=progress)
    story = Story(users, events)
    for name in CAMPAIGNS:
        campaign = read_campaign(campaign_path(name))
        apply(
            plan_apply(campaign, client.store, client.ws),
            client.store,
            client.ws,
            clock(),
            activate=True,
        )
    replay = Replay(client, users, seed, DEMO_NOW, days)

    def between(start: float, end: float) -> None:
        replay.until(start, end)
        if progress:
            progress("days", int(end // DAY) - int(start // DAY))

    story.ticks = runner.advance(DEMO_NOW + days * DAY, every, between=between)
    story.activity = replay.count
    return story
