"""How members leave: the goal (and its attribution), leaving the audience, inactivity, and
the end of the steps."""

from __future__ import annotations

from drumbeat.engine.member import END, State
from tests.conftest import SEMANTICS_SHAPES
from tests.e2e.helpers import PAID, campaign, send, sent_at, wait
from tests.world import DAY, HOUR, MONDAY

SHAPES = SEMANTICS_SHAPES  # the campaign semantics suite runs over Celery workers too

GOAL = {"rule": PAID, "window": "2d"}


def test_a_member_who_reaches_the_goal_exits_converted(world):
    world.ticks_only()
    world.identify("u1", plan="free")
    world.identify("u2", plan="free")
    world.apply(campaign("convert", [send("pitch"), wait("10d"), send("last")], goal=GOAL))
    world.tick()
    world.advance(DAY)
    world.identify("u1", plan="paid")  # 1d after the last message: within the 2d window
    world.advance(HOUR)
    member = world.member("convert", "u1")
    assert (member.state, member.exit_reason) == (State.CONVERTED, "goal")
    assert member.exited_at == MONDAY + DAY + HOUR
    assert member.attributed is True
    assert member.next_due_at is None
    world.advance(10 * DAY, every=DAY)
    assert world.steps_sent("u1") == ["pitch"]  # nothing after the exit
    assert world.steps_sent("u2") == ["pitch", "last"]


def test_a_conversion_after_the_goal_window_is_not_attributed(world):
    world.ticks_only()
    world.identify("u1", plan="free")
    world.apply(campaign("convert", [send("pitch"), wait("10d"), send("last")], goal=GOAL))
    world.tick()
    world.advance(3 * DAY, every=DAY)
    world.identify("u1", plan="paid")  # 3d after the last message; the window is 2d
    world.advance(HOUR)
    member = world.member("convert", "u1")
    assert (member.state, member.attributed) == (State.CONVERTED, False)
    assert member.exited_at == MONDAY + 3 * DAY + HOUR


def test_the_goal_is_checked_before_the_audience(world):
    world.identify("u1", plan="free")
    world.apply(
        campaign(
            "convert",
            [send("pitch"), wait("10d"), send("last")],
            goal=GOAL,
            exit={"when_no_longer_matching": True},
        )
    )
    world.tick()
    world.identify("u1", plan="paid")  # leaves the audience (plan free) and converts at once
    world.advance(HOUR)
    member = world.member("convert", "u1")
    assert (member.state, member.exit_reason, member.attributed) == (State.CONVERTED, "goal", True)


def test_when_no_longer_matching_a_member_leaves_the_audience(world):
    world.ticks_only()
    world.identify("u1", plan="free")
    world.identify("u2", plan="free")
    world.apply(
        campaign(
            "nurture",
            [send("one"), wait("2d"), send("two")],
            goal=GOAL,
            exit={"when_no_longer_matching": True},
        )
    )
    world.tick()
    world.identify("u1", plan="trial")  # neither the audience nor the goal
    world.advance(HOUR)
    member = world.member("nurture", "u1")
    assert (member.state, member.exited_at) == (State.LEFT_AUDIENCE, MONDAY + HOUR)
    world.advance(3 * DAY, every=6 * HOUR)
    assert world.steps_sent("u1") == ["one"]
    assert world.steps_sent("u2") == ["one", "two"]


def test_by_default_members_stay_when_they_leave_the_audience(world):
    world.identify("u1", plan="free")
    world.apply(campaign("nurture", [send("one"), wait("2d"), send("two")]))
    world.tick()
    world.identify("u1", plan="trial")
    world.advance(3 * DAY, every=6 * HOUR)
    assert world.steps_sent("u1") == ["one", "two"]
    assert world.member("nurture", "u1").state == State.COMPLETED


def test_a_member_sent_nothing_for_inactive_after_exits_inactive(world):
    world.identify("u1", plan="free")
    world.apply(
        campaign(
            "slow",
            [send("one"), wait("2d"), send("two"), wait("10d"), send("three")],
            exit={"inactive_after": "3d"},
        )
    )
    world.tick()
    world.advance(4 * DAY, every=HOUR)
    # 4d after entry, but 2d after the last message: still active
    member = world.member("slow", "u1")
    assert (member.state, member.last_sent_at) == (State.ACTIVE, MONDAY + 2 * DAY)
    assert member.next_due_at == MONDAY + 5 * DAY  # 3d after the last message, not 12d
    world.advance(DAY - HOUR, every=HOUR)
    assert world.member("slow", "u1").state == State.ACTIVE
    world.advance(HOUR)
    member = world.member("slow", "u1")
    assert (member.state, member.exit_reason) == (State.INACTIVE, "inactive")
    assert member.exited_at == MONDAY + 5 * DAY
    world.advance(10 * DAY, every=DAY)
    assert world.steps_sent("u1") == ["one", "two"]


def test_without_a_goal_the_end_of_the_steps_completes_at_once(world):
    world.identify("u1", plan="free")
    world.apply(campaign("short", [send("only")]))
    world.tick()
    member = world.member("short", "u1")
    assert (member.state, member.position, member.exited_at) == (State.COMPLETED, END, MONDAY)


def test_with_a_goal_the_end_of_the_steps_waits_out_the_goal_window(world):
    """Documented: a member past its last step stays until the goal window after its last
    message is over, so a late conversion still counts (and control groups compare)."""
    world.ticks_only()
    world.identify("late", plan="free")
    world.identify("never", plan="free")
    world.apply(campaign("short", [send("only")], goal=GOAL))
    world.tick()
    for user in ("late", "never"):
        member = world.member("short", user)
        assert (member.state, member.position) == (State.ACTIVE, END)
        assert member.next_due_at == MONDAY + 2 * DAY
    world.advance(DAY + 12 * HOUR, every=6 * HOUR)
    world.identify("late", plan="paid")
    world.advance(6 * HOUR, every=HOUR)
    late = world.member("short", "late")
    assert (late.state, late.attributed) == (State.CONVERTED, True)
    assert late.exited_at == MONDAY + DAY + 13 * HOUR
    assert world.member("short", "never").state == State.ACTIVE  # 1d18h: window not over
    world.advance(6 * HOUR, every=HOUR)
    never = world.member("short", "never")
    assert (never.state, never.exit_reason) == (State.COMPLETED, "goal window over")
    assert never.exited_at == MONDAY + 2 * DAY


def test_a_control_group_waits_out_the_goal_window_from_entry(world):
    world.identify("u1", plan="free")
    split = {
        "split": {
            "id": "holdout",
            "paths": {"control": {"weight": 1, "steps": []}, "never": {"weight": 1e-9}},
        }
    }
    world.apply(campaign("holdout", [split], goal=GOAL))
    world.tick()
    member = world.member("holdout", "u1")
    assert (member.position, member.next_due_at) == (END, MONDAY + 2 * DAY)
    world.advance(DAY)
    world.identify("u1", plan="paid")
    world.advance(HOUR)
    member = world.member("holdout", "u1")
    # converted without a message: a control member's conversion, not attributed to one
    assert (member.state, member.attributed) == (State.CONVERTED, False)
    assert world.steps_sent("u1") == []


def test_a_goal_window_already_over_at_the_last_step_completes_at_once(world):
    world.identify("u1", plan="free")
    world.apply(campaign("short", [send("only"), wait("5d")], goal=GOAL))
    world.tick()
    world.advance(5 * DAY, every=DAY)
    # the wait ends 5d after the only message: its 2d goal window is long over
    member = world.member("short", "u1")
    assert (member.state, member.exited_at) == (State.COMPLETED, MONDAY + 5 * DAY)
    assert sent_at(world, "u1", "only") == MONDAY
