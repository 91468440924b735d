"""The capacity model on measured costs made by hand: how each figure scales from them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from drumbeat.capacity import Measured, NoTimings, Target, model, unit_of
from drumbeat.histogram import Histogram


def timed(count: int, seconds: float, items: int = 0) -> Histogram:
    h = Histogram()
    for _ in range(count):
        h.add(seconds / count, items // count)
    return h


# 10 ticks of 1 s; 2 plans of 100 users each; 20 batches of 10 users at 0.02 s; 200
# messages in 4 rounds; one query a tick, one a plan, two a batch, a claim a batch + a tick
MEASURED = Measured(
    users=100,
    campaigns=1,
    stages={
        "stage.tick": timed(10, 10.0),
        "stage.plan": timed(10, 1.0),
        "plan.campaign": timed(2, 0.5),
        "stage.batch": timed(20, 0.4, 200),
        "stage.dispatch": timed(4, 0.2, 200),
    },
    queries={
        "planner.campaigns": timed(10, 0.1),
        "audience.entry_candidates": timed(2, 0.1),
        "store.load_users": timed(40, 0.1, 400),
        "store.claim_batch": timed(30, 0.1),
        "store.record_results": timed(4, 0.1, 200),
    },
    lanes={"fast": timed(20, 0.4, 200)},
    workers=1,
)


def target(**changed: object) -> Target:
    given: dict[str, object] = {
        "users": 200, "campaigns": 1, "events_per_day": 0, "batch_size": 10,
        "tick_interval": 10.0, "workers": None, "store_queries_per_second": 100.0, "cores": 2,
    } | changed  # fmt: skip
    return Target(**given)  # type: ignore[arg-type]


def test_twice_the_users_doubles_the_work_of_a_tick() -> None:
    c = model(MEASURED, target())
    assert c.plans_per_tick == pytest.approx(0.2)
    assert c.users_per_tick == pytest.approx(40.0)  # 200 users a plan, 0.2 plans a tick
    assert c.batches_per_tick == pytest.approx(4.0)
    assert c.messages_per_tick == pytest.approx(40.0)
    # a tick: 1 + a plan's 0.2 × 1 + batches 4 × 2 + claims 4 + 1 + rounds 0.8
    assert c.store_queries_per_tick == pytest.approx(1 + 0.2 + 8 + 5 + 0.8)
    # fixed (10 - 1 - 0.2 - 0.4) / 10, planning 0.05 + 0.5 / 200 × 40, batches, dispatch
    assert c.tick_seconds == pytest.approx(0.84 + 0.15 + 0.08 + 0.04)
    assert c.workers_per_lane == {"fast": 1}
    assert c.ticks_per_hour == 360.0 and c.messages_per_hour == pytest.approx(40 * 360)


def test_a_batch_is_timed_whole_by_its_lane_so_none_of_it_is_fixed() -> None:
    # the lane's batches took 0.6 s (0.2 s of commits beside `stage.batch`'s 0.4 s): that
    # 0.2 s grows with the users, so it leaves the fixed part and doubles with them
    whole = replace(MEASURED, lanes={"fast": timed(20, 0.6, 200)})
    c = model(whole, target())
    # fixed (10 - 1 - 0.2 - 0.6) / 10, planning 0.05 + 0.5 / 200 × 40, batches, dispatch
    assert c.tick_seconds == pytest.approx(0.82 + 0.15 + 0.12 + 0.04)


def test_the_resource_used_most_runs_out_first() -> None:
    busy = model(MEASURED, target(users=100_000, campaigns=10, events_per_day=86_400))
    assert busy.workers_per_lane["fast"] > 2 and busy.use["worker CPU"] > 1
    assert busy.runs_out_first == max(busy.use, key=lambda k: busy.use[k])
    assert busy.event_queries_per_second is None  # no event writes were measured


def test_no_ticks_no_model() -> None:
    with pytest.raises(NoTimings):
        model(Measured(1, 1, {}, {}, {}, 1), target())


def test_what_each_query_follows() -> None:
    assert [unit_of(n) for n in ("planner.due_members", "planner.changed_members")] == [
        "tick",
        "plan",
    ]
    assert [unit_of(n) for n in ("store.claim_messages", "store.claim_batch")] == [
        "dispatch",
        "batch",
    ]
