"""When a send may go: the send window in the user's time zone (weekends, DST) and the
workspace's frequency cap. A held send waits; it is never dropped."""

from __future__ import annotations

import pytest

from drumbeat.engine.member import State
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.worker import (
    BATCH_LEASE,
    CapOvertaken,
    commit_batch,
    process_batch,
    stage_batch,
)
from tests.conftest import SEMANTICS_SHAPES
from tests.e2e.helpers import at, campaign, send, sent_at, wait
from tests.world import DAY, HOUR, MONDAY

SHAPES = SEMANTICS_SHAPES  # the campaign semantics suite runs over Celery workers too

OFFICE_HOURS = {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00"}


def test_a_send_outside_the_window_waits_for_it_in_the_users_time_zone(world):
    # Monday 00:00Z is 09:00 on Monday in Tokyo, 19:00 on Sunday in New York
    world.identify("tokyo", plan="free", timezone="Asia/Tokyo")
    world.identify("new-york", plan="free", timezone="America/New_York")
    world.apply(campaign("hours", [send("hello")], send_window=OFFICE_HOURS))
    world.tick()
    assert sent_at(world, "tokyo", "hello") == MONDAY
    held = world.member("hours", "new-york")
    assert (held.state, held.position, held.next_due_at) == (
        State.ACTIVE,
        "hello",
        MONDAY + 14 * HOUR,
    )
    world.advance(14 * HOUR - HOUR, every=HOUR)
    assert sent_at(world, "new-york", "hello") is None
    world.advance(HOUR)
    assert sent_at(world, "new-york", "hello") == MONDAY + 14 * HOUR  # 09:00 EST
    assert world.member("hours", "new-york").state == State.COMPLETED


def test_a_send_held_over_the_weekend_goes_on_monday_morning_local_time(world):
    world.clock.set(at("2026-01-09T23:00"))  # Friday 18:00 in New York, Saturday 08:00 in Tokyo
    world.identify("tokyo", plan="free", timezone="Asia/Tokyo")
    world.identify("new-york", plan="free", timezone="America/New_York")
    world.apply(campaign("hours", [send("hello")], send_window=OFFICE_HOURS))
    world.tick()
    assert world.outbox() == []  # 18:00 is the end of the window: closed
    world.advance(48 * HOUR, every=4 * HOUR)  # to Sunday 23:00Z
    assert world.outbox() == []
    world.advance(16 * HOUR, every=HOUR)
    assert sent_at(world, "tokyo", "hello") == at("2026-01-12T00:00")  # Monday 09:00 JST
    assert sent_at(world, "new-york", "hello") == at("2026-01-12T14:00")  # Monday 09:00 EST


def test_the_window_follows_the_users_clock_across_a_dst_change(world):
    """Europe/Paris moves to summer time on Sunday 2026-03-29: Monday 09:00 there is 08:00Z on
    the 23rd and 07:00Z on the 30th."""
    world.clock.set(at("2026-03-21T12:00"))  # a Saturday
    world.identify("paris", plan="free", timezone="Europe/Paris")
    window = {"days": ["mon"], "from": "09:00", "to": "12:00"}
    world.apply(
        campaign("mondays", [send("first"), wait("1d"), send("second")], send_window=window)
    )
    world.tick()
    assert world.member("mondays", "paris").next_due_at == at("2026-03-23T08:00")
    world.advance(44 * HOUR, every=4 * HOUR)  # Saturday 12:00Z → Monday 08:00Z
    assert sent_at(world, "paris", "first") == at("2026-03-23T08:00")
    world.advance(DAY, every=4 * HOUR)  # the wait ends on Tuesday: held until next Monday
    member = world.member("mondays", "paris")
    assert (member.position, member.next_due_at) == ("second", at("2026-03-30T07:00"))
    world.advance(at("2026-03-30T04:00") - world.now(), every=12 * HOUR)
    assert sent_at(world, "paris", "second") is None
    world.advance(4 * HOUR, every=HOUR)
    assert sent_at(world, "paris", "second") == at("2026-03-30T07:00")


def test_the_frequency_cap_holds_a_third_message_until_a_slot_frees(world):
    world.cap(2, 7 * DAY)
    world.identify("u1", plan="free")
    world.apply(campaign("alpha", [send("a1"), wait("1d"), send("a2")]))
    world.apply(campaign("beta", [send("b1")]))
    world.tick()
    assert sorted(world.steps_sent("u1")) == ["a1", "b1"]  # two messages, two campaigns
    world.advance(DAY, every=12 * HOUR)
    # a2 is due after 1d, but u1 had 2 messages in the last 7d: held until the older leaves
    member = world.member("alpha", "u1")
    assert (member.state, member.position, member.next_due_at) == (
        State.ACTIVE,
        "a2",
        MONDAY + 7 * DAY,
    )
    world.advance(6 * DAY - 12 * HOUR, every=12 * HOUR)
    assert sent_at(world, "u1", "a2") is None
    world.advance(12 * HOUR, every=12 * HOUR)
    assert sent_at(world, "u1", "a2") == MONDAY + 7 * DAY  # sent then, not dropped
    assert world.member("alpha", "u1").state == State.COMPLETED
    assert [r["status"] for r in world.outbox()] == ["sent"] * 3


def test_the_cap_holds_when_another_campaigns_batch_queues_a_message_in_between(world):
    """Two workers, two campaigns, one user: worker A reads u1's recent sends, worker B then
    queues a message for u1 and commits, and only then does A commit. A must not queue a
    second message inside the cap: its commit is refused and the batch is worked again."""
    world.cap(1, 7 * DAY)
    world.identify("u1", plan="free")
    world.apply(campaign("alpha", [send("a1")]))
    world.apply(campaign("beta", [send("b1")]))
    now, store, programs = world.now(), world.store, world.runner.programs
    plan_all(store, programs, now, full_pass_every=world.config.full_pass_every)
    first = store.claim_batch(DEFAULT_LANE, BATCH_LEASE)
    second = store.claim_batch(DEFAULT_LANE, BATCH_LEASE)
    assert first is not None and second is not None
    program = programs.get(first.workspace_id, first.campaign_key)
    assert program is not None
    staged = stage_batch(store, program, first, now)  # worker A, before B's commit
    process_batch(store, programs, second, now)  # worker B: one message for u1
    with pytest.raises(CapOvertaken):
        commit_batch(store, staged, now)  # refused: nothing written
    assert len(world.outbox()) == 1
    report, _ = process_batch(store, programs, first, now)  # A again, from fresh sends
    assert report.messages == 0  # held by the cap, not sent
    assert len(world.outbox()) == 1
    held = world.member(first.campaign_key, "u1")
    assert held is not None and held.next_due_at == now + 7 * DAY
