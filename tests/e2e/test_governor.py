"""The governor, on SQLite and PostgreSQL: a new campaign's ramp, the caps on batches in
flight per campaign and per workspace, round-robin claims across workspaces, and the
back-off while the batch queries are slow. Users held back are planned on a later tick:
every one enters once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from drumbeat import metrics
from drumbeat.client import Drumbeat
from drumbeat.config import settings
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.runner import Runner
from drumbeat.pipeline.worker import BATCH_LEASE
from tests.conftest import archive_campaigns
from tests.e2e.helpers import campaign, outbox_keys, send, wait
from tests.world import DAY, HOUR, World

DRIP = campaign("drip", [send("hello"), wait("30d")])


def governed(world: World, batch_size: int, **overrides: Any) -> World:
    """The world's runner again, with these settings and batches of `batch_size` users."""
    world.runner.close()
    world.store.batch_size = batch_size
    world.config = world.config.model_copy(update=overrides)
    world.runner = Runner(world.store, world.config, world.clock)
    return world


def populate(db: Drumbeat, users: int, prefix: str = "u") -> list[str]:
    ids = [f"{prefix}{i:05}" for i in range(users)]
    db.identify_many([{"user_id": u, "traits": {"plan": "free"}} for u in ids])
    return ids


def entered_once(world: World, key: str) -> list[str]:
    """The users `key` sent its first message to, each checked to be there once."""
    users = [u for c, _, u, _, _ in outbox_keys(world) if c == key]
    assert len(users) == len(set(users))
    return sorted(users)


def plan(world: World) -> None:
    """One planning pass of the world's runner, with its governor, no batch worked."""
    runner = world.runner
    plan_all(
        world.store, runner.programs, world.now(), full_pass_every=DAY, governor=runner.governor
    )


def test_a_new_campaign_ramps_up_and_everyone_enters_once(world):
    governed(world, 2, ramp_start=3, ramp_factor=2.0)
    everyone = populate(world.db, 20)
    world.apply(DRIP)
    entered = [world.advance(HOUR, every=HOUR)[0].entered for _ in range(4)]
    assert entered == [3, 6, 11, 0]  # 3, then twice as many, then the 11 left
    assert entered_once(world, "drip") == everyone


def test_batches_in_flight_are_capped_per_campaign_and_per_workspace(world):
    governed(world, 2, campaign_batches_in_flight=2, workspace_batches_in_flight=3)
    everyone = populate(world.db, 20)
    world.apply(DRIP)
    world.apply({**DRIP, "key": "other", "name": "other"})
    plan(world)
    pending = Counter(b.campaign for b in world.db.batches(status="pending"))
    assert pending == {"drip": 2, "other": 1}  # 3 in the workspace, 2 at most a campaign
    plan(world)  # none worked yet: the caps are full
    assert len(world.db.batches(status="pending")) == 3
    reports = world.advance(12 * HOUR, every=HOUR)
    assert max(r.batches for r in reports) == 3
    assert entered_once(world, "drip") == entered_once(world, "other") == everyone


@pytest.fixture
def other(database_url: str, workspace_name: str, tmp_path) -> Iterator[Drumbeat]:  # type: ignore[no-untyped-def]
    """A second workspace on the world's store."""
    name = f"{workspace_name}-b"
    db = Drumbeat(config=settings(database_url=database_url, workspace=name))
    try:
        yield db
    finally:
        db.close()
        archive_campaigns(database_url, name)


def test_claims_go_round_robin_across_workspaces(world, other):
    governed(world, 2)
    populate(world.db, 40)  # 20 batches, planned first
    populate(other, 4, "v")  # 2 batches
    world.apply(DRIP)
    other.campaigns.apply([parse_campaign(DRIP)], activate=True)
    plan(world)
    order = []
    while (batch := world.store.claim_batch(DEFAULT_LANE, BATCH_LEASE)) is not None:
        if batch.workspace_id in (world.ws, other.ws):
            order.append("small" if batch.workspace_id == other.ws else "large")
    assert order[:4] == ["large", "small", "large", "small"]
    assert len(order) == 22


def test_a_small_workspace_finishes_long_before_a_large_one_started_with_it(world, other):
    governed(world, 2, workspace_batches_in_flight=4)
    large = populate(world.db, 200)
    small = populate(other, 2, "v")
    world.apply(DRIP)
    other.campaigns.apply([parse_campaign(DRIP)], activate=True)
    done: dict[str, int] = {}
    for tick in range(1, 30):
        world.advance(HOUR, every=HOUR)
        members = {
            "large": world.db.store.member_counts(world.ws, "drip").get("active", 0),
            "small": other.store.member_counts(other.ws, "drip").get("active", 0),
        }
        for name, want in (("large", len(large)), ("small", len(small))):
            if members[name] == want:
                done.setdefault(name, tick)
    assert done == {"small": 1, "large": 25}  # 200 users, 8 a tick (4 batches of 2)


def test_slow_batch_queries_make_the_planner_plan_less_until_they_recover(world):
    governed(world, 1, campaign_batches_in_flight=8, backoff_p99=1.0)
    populate(world.db, 40)
    world.apply(DRIP)
    metrics.reset()
    try:
        planned = []
        for slow in (True, True, True, False, False, False):
            if slow:
                metrics.observe("store.commit_batch", 5.0)  # as a store that slowed down
            else:
                metrics.reset()
            planned.append(world.advance(HOUR, every=HOUR)[0].batches)
    finally:
        metrics.reset()
    assert planned == [4, 2, 1, 2, 4, 8]
