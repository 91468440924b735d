"""Messages reach the right users exactly once: suppression (at queue and at send time), and
the outbox key holding across repeated ticks and batches that failed to commit."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from drumbeat import metrics
from drumbeat.engine.member import State
from drumbeat.pipeline.executors.local import drain
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.pipeline.worker import BATCH_LEASE, LeaseLost, process_batch
from drumbeat.store import Store
from drumbeat.store.schema import batches
from tests.e2e.helpers import campaign, outbox_keys, retire, send, wait
from tests.world import DAY, HOUR, MONDAY, World

DRIP = campaign("drip", [send("one"), wait("1d"), send("two")])


def plan_and_work(world: World) -> None:
    """The first half of a tick: plan, and run every batch (messages queued, none sent)."""
    now = world.now()
    programs = world.runner.programs
    plan_all(world.store, programs, now, full_pass_every=world.config.full_pass_every)
    drain(world.store, programs, DEFAULT_LANE, lambda: now)


def test_unsubscribed_users_are_never_sent_to(world):
    world.identify("gone", plan="free", email="gone@example.com", unsubscribed=True)
    world.identify("here", plan="free", email="here@example.com")
    world.apply(DRIP)
    world.tick()
    world.identify("here", unsubscribed=True)  # after the first message
    world.advance(2 * DAY, every=6 * HOUR)
    assert world.steps_sent("gone") == []
    assert world.steps_sent("here") == ["one"]
    assert [m["user_id"] for m in world.delivered()] == ["here"]
    # they go through the campaign all the same, sent nothing
    assert world.member("drip", "gone").state == State.COMPLETED
    assert world.member("drip", "here").state == State.COMPLETED


def test_unsubscribing_after_a_message_was_queued_suppresses_it(world):
    world.identify("u1", plan="free", email="u1@example.com")
    world.apply(DRIP)
    plan_and_work(world)
    assert [(r["step_id"], r["status"]) for r in world.outbox()] == [("one", "pending")]
    world.identify("u1", unsubscribed=True)
    report = world.runner.dispatcher.dispatch(world.now())
    assert dict(report.counts) == {"failed": 1}
    [row] = world.outbox()
    assert row["status"] == "failed"
    assert "suppressed" in row["last_error"] and "unsubscribed" in row["last_error"]
    assert world.delivered() == []


def test_a_dispatch_round_is_timed_whole_and_the_empty_claim_ending_it_is_not(world):
    for n in range(3):
        world.identify(f"u{n}", plan="free", email=f"u{n}@example.com")
    world.apply(DRIP)
    plan_and_work(world)
    metrics.reset()
    world.runner.dispatcher.dispatch(world.now())
    timed = metrics.summaries()
    rounds, recorded = timed["stage.dispatch"], timed["store.record_results"]
    assert (rounds.count, rounds.items, timed["store.claim_messages"].count) == (1, 3, 2)
    assert rounds.total >= recorded.total > 0  # the claim's results recorded in its round


def test_the_same_tick_twice_queues_nothing_more(world):
    world.identify("u1", plan="free")
    world.identify("u2", plan="free")
    world.apply(DRIP)
    world.tick()
    world.tick()
    assert len(world.outbox()) == 2
    world.advance(DAY)
    before = world.member("drip", "u1")
    again = world.tick()
    assert again.queued == 0 and again.entered == 0
    assert world.member("drip", "u1") == before
    assert Counter(r["step_id"] for r in world.outbox()) == {"one": 2, "two": 2}


def test_a_batch_whose_lease_was_lost_commits_nothing_and_its_rerun_commits_once(world):
    world.identify("u1", plan="free")
    world.identify("u2", plan="free")
    world.apply(DRIP)
    now, store, programs = world.now(), world.store, world.runner.programs
    plan_all(store, programs, now, full_pass_every=world.config.full_pass_every)
    slow = store.claim_batch(DEFAULT_LANE, BATCH_LEASE)
    assert slow is not None and slow.kind == "enter"
    # the first worker stalls past its lease; a second one claims the batch (a new fence)
    real_time_passes(store, BATCH_LEASE + 1)
    fast = store.claim_batch(DEFAULT_LANE, BATCH_LEASE)
    assert fast is not None and fast.id == slow.id and fast.fence == slow.fence + 1
    with pytest.raises(LeaseLost):
        process_batch(store, programs, slow, now)  # the engine ran; the commit is refused
    assert world.outbox() == []  # rolled back: no message, no membership
    assert world.member("drip", "u1") is None
    process_batch(store, programs, fast, now)
    process_batch(store, programs, fast, now)  # delivered twice (a broker redelivery)
    real_time_passes(store, BATCH_LEASE + 1)
    assert store.claim_batch(DEFAULT_LANE, BATCH_LEASE) is None
    world.advance(2 * DAY, every=6 * HOUR)
    keys = outbox_keys(world)
    assert sorted((step, user, entry) for _, step, user, entry, _ in keys) == [
        ("one", "u1", 1),
        ("one", "u2", 1),
        ("two", "u1", 1),
        ("two", "u2", 1),
    ]
    assert world.member("drip", "u1").state == State.COMPLETED


def two_planned_batches(world: World) -> tuple[float, Store, Programs]:
    """u1 in two campaigns, planned: two batches wait in the lane."""
    world.identify("u1", plan="free")
    world.apply(DRIP)
    world.apply(campaign("other", [send("hello")]))
    now, store, programs = world.now(), world.store, world.runner.programs
    plan_all(store, programs, now, full_pass_every=world.config.full_pass_every)
    return now, store, programs


def test_a_worker_claims_its_next_batch_in_the_transaction_that_finishes_one(world):
    now, store, programs = two_planned_batches(world)
    first = store.claim_batch(DEFAULT_LANE, BATCH_LEASE)
    assert first is not None
    _, following = process_batch(store, programs, first, now, claim_from=DEFAULT_LANE)
    assert following is not None and following.id != first.id
    assert (batch_status(world, first.id), batch_status(world, following.id)) == ("done", "running")
    assert store.claim_batch(DEFAULT_LANE, BATCH_LEASE) is None  # this worker holds it
    _, after = process_batch(store, programs, following, now, claim_from=DEFAULT_LANE)
    assert after is None and batch_status(world, following.id) == "done"


def test_a_lost_lease_rolls_back_the_claim_of_the_next_batch_too(world):
    now, store, programs = two_planned_batches(world)
    slow = store.claim_batch(DEFAULT_LANE, BATCH_LEASE)
    real_time_passes(store, BATCH_LEASE + 1)
    stolen = store.claim_batch(DEFAULT_LANE, BATCH_LEASE)
    assert slow is not None and stolen is not None and stolen.id == slow.id
    with pytest.raises(LeaseLost):
        process_batch(store, programs, slow, now, claim_from=DEFAULT_LANE)
    pending = store.claim_batch(DEFAULT_LANE, BATCH_LEASE)  # still there to claim
    assert pending is not None and pending.id != slow.id and pending.fence == 1


def batch_status(world: World, batch_id: int) -> str:
    with world.store.engine.connect() as conn:
        return str(conn.execute(select(batches.c.status).where(batches.c.id == batch_id)).scalar())


def real_time_passes(store: Store, seconds: float) -> None:
    """Move the real clock the store's leases count by `seconds` (the virtual one stays)."""
    earlier = store.real_clock
    store.real_clock = lambda: earlier() + seconds


def test_a_batch_whose_worker_died_runs_after_its_lease_and_adds_nothing_twice(world):
    world.identify("u1", plan="free")
    world.apply(DRIP)
    now = world.now()
    plan_all(world.store, world.runner.programs, now, full_pass_every=world.config.full_pass_every)
    dead = world.store.claim_batch(DEFAULT_LANE, BATCH_LEASE)  # and its worker dies
    assert dead is not None
    world.advance(DAY)  # u1 waits for its batch: not planned again meanwhile
    assert world.steps_sent("u1") == []
    assert batch_status(world, dead.id) == "running"
    real_time_passes(world.store, BATCH_LEASE + 1)  # the lease counts real time
    world.tick()
    assert batch_status(world, dead.id) == "done"  # claimed again once the lease ran out
    assert world.steps_sent("u1") == ["one"]
    assert world.member("drip", "u1").entered_at == now + DAY
    world.advance(2 * DAY)
    assert world.steps_sent("u1") == ["one", "two"]


# ---- property: the tick schedule changes when messages go, never which ----------------------

PROPERTY = campaign(
    "schedule",
    [
        send("a"),
        wait("1d"),
        {
            "branch": {
                "id": "tier",
                "if": {"attr": "tier", "eq": "gold"},
                "then": [send("gold")],
                "else": [send("basic", "in_app")],
            }
        },
        {"wait_until": {"rule": {"event": "clicked", "count": {"gte": 1}}, "timeout": "1d"}},
        send("c"),
    ],
    goal={"rule": {"attr": "plan", "eq": "paid"}, "window": "1d"},
    send_window={"days": ["mon", "tue", "wed", "thu", "fri"], "from": "06:00", "to": "20:00"},
)
START = MONDAY + 3 * HOUR  # before the window opens: the first sends are held
# everything is sent and every member has exited by then (and 7d after the last random tick)
SETTLED = MONDAY + 9 * DAY
# (when, user, what): users who come later, and an event in the middle of a wait_until
LATER = [
    (START + 30 * HOUR, "late", {"plan": "free", "tier": "gold"}),
    (START + 40 * HOUR, "u3", "clicked"),
    (START + 60 * HOUR, "later", {"plan": "free"}),
]
Row = tuple[str, str, str, int]


def run_schedule(url: str, tmp: Path, segments: list[tuple[float, int, bool]]) -> list[Row]:
    """Run PROPERTY in a fresh workspace, ticking `count` times every `every` seconds per
    segment (and once more at the same time when `repeat`), then every 12h until all is done
    (every weekday's 14h window gets a tick)."""
    folder = tmp / uuid.uuid4().hex[:8]
    folder.mkdir()
    world = World(url, f"ws-{folder.name}", folder, start=START)
    try:
        for i in range(6):
            world.identify(f"u{i}", plan="free", tier="gold" if i % 2 else "basic")
        world.track("u1", "clicked")
        world.apply(PROPERTY)
        later = list(LATER)
        times = [START]
        for every, count, repeat in segments:
            times += [times[-1] + every * (n + 1) for n in range(count)]
            if repeat:
                times.append(times[-1])
        settled = max(SETTLED, times[-1] + 7 * DAY)
        while times[-1] < settled:
            times.append(min(times[-1] + 12 * HOUR, settled))
        for t in times:
            while later and later[0][0] <= t:
                when, user, what = later.pop(0)
                world.clock.set(max(when, world.now()))
                if isinstance(what, dict):
                    world.identify(user, **what)
                else:
                    world.track(user, what)
            world.clock.set(t)
            world.tick()
        assert {m.state for m in world.store.members(world.ws, "schedule")} == {State.COMPLETED}
        return sorted((c, s, u, e) for c, s, u, e, _ in outbox_keys(world))
    finally:
        retire(world)
        world.close()


@pytest.fixture
def reference(database_url: str, tmp_path: Path) -> list[Row]:
    """The rows of one plain schedule: a tick every 4 hours."""
    return run_schedule(database_url, tmp_path, [(4 * HOUR, 30, False)])


def test_the_reference_schedule_sends_every_message_once(reference):
    users = [f"u{i}" for i in range(6)] + ["late", "later"]
    assert Counter(user for _, _, user, _ in reference) == dict.fromkeys(users, 3)
    assert Counter(step for _, step, _, _ in reference) == {"a": 8, "gold": 4, "basic": 4, "c": 8}


@settings(
    max_examples=4,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is a whole run
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(segments=[(HOUR, 1, True), (HOUR, 1, True), (DAY, 2, True)])
@given(
    segments=st.lists(
        st.tuples(
            st.sampled_from([HOUR, 2 * HOUR, 5 * HOUR, 11 * HOUR, DAY, 30 * HOUR]),
            st.integers(min_value=1, max_value=5),
            st.booleans(),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_tick_schedule_queues_the_same_messages_once(
    database_url, tmp_path, reference, segments
):
    rows = run_schedule(database_url, tmp_path, segments)
    assert len(rows) == len(set(rows))  # one row per (campaign, step, user, entry)
    assert rows == reference
