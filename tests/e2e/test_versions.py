"""Campaigns that change under their members: new versions, refused definitions, pause and
resume."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from drumbeat.campaigns import ApplyPlan, apply, plan_apply, set_status
from drumbeat.engine.member import State
from drumbeat.errors import InvalidInput
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.executors.local import drain
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.store.schema import batches
from tests.conftest import SEMANTICS_SHAPES
from tests.e2e.helpers import campaign, send, sent_at, wait
from tests.world import DAY, HOUR, MONDAY, World

SHAPES = SEMANTICS_SHAPES  # the campaign semantics suite runs over Celery workers too

V1 = campaign("drip", [send("one"), wait("2d", "cool-off"), send("two"), wait("2d"), send("three")])


def test_a_new_version_keeps_members_at_steps_it_still_has(world):
    world.identify("u1", plan="free")
    world.apply(V1)
    world.tick()
    assert world.member("drip", "u1").position == "cool-off"
    v2 = campaign("drip", [send("one"), wait("2d", "cool-off"), send("two-v2"), send("bonus")])
    plan = plan_apply(parse_campaign(v2), world.store, world.ws)
    assert (plan.version, plan.kept, plan.moved) == (2, 1, {})
    assert world.apply(v2) == 2
    member = world.member("drip", "u1")
    # kept where it was, and due at once so the next tick reads its wait under version 2
    assert (member.state, member.position, member.next_due_at) == (
        State.ACTIVE,
        "cool-off",
        MONDAY,
    )
    world.tick()
    # the wait it started under version 1 goes on
    assert world.member("drip", "u1").next_due_at == MONDAY + 2 * DAY
    world.advance(3 * DAY, every=12 * HOUR)
    assert world.steps_sent("u1") == ["one", "two-v2", "bonus"]
    assert sent_at(world, "u1", "two-v2") == MONDAY + 2 * DAY
    assert world.member("drip", "u1").state == State.COMPLETED


def test_members_at_a_step_a_new_version_removes_exit_completed(world):
    world.identify("u1", plan="free")
    world.identify("u2", plan="free")
    world.apply(V1)
    world.tick()
    world.identify("u2", plan="free", fast=True)
    world.advance(2 * DAY, every=12 * HOUR)  # both at steps[3] (the wait before "three")
    world.identify("u3", plan="free")
    world.tick()  # u3 enters and waits at cool-off
    v2 = campaign("drip", [send("one"), wait("2d", "cool-off"), send("two"), send("three")])
    plan = plan_apply(parse_campaign(v2), world.store, world.ws)
    assert (plan.kept, plan.moved) == (1, {"steps[3]": 2})
    world.apply(v2)
    for user in ("u1", "u2"):
        member = world.member("drip", user)
        assert (member.state, member.exit_reason) == (State.COMPLETED, "step removed in version 2")
        assert (member.exited_at, member.next_due_at) == (MONDAY + 2 * DAY, None)
    world.advance(3 * DAY, every=12 * HOUR)
    assert world.steps_sent("u1") == ["one", "two"]
    assert world.steps_sent("u3") == ["one", "two", "three"]


def test_a_member_left_at_a_removed_step_by_a_late_batch_exits_at_its_next_due(world):
    """A batch planned (and compiled) under version 1 runs after version 2 was applied, and
    moves its member to a step that version 2 does not have: the member exits `completed`
    when it comes due."""
    long_id = "cool-off-before-the-third-message"  # longer than the exit reason's column
    world.identify("u1", plan="free")
    world.apply(
        campaign("drip", [send("one"), wait("1d", "first"), send("two"), wait("1d", long_id)])
    )
    world.tick()
    world.clock.set(MONDAY + DAY)
    now, programs = world.now(), world.runner.programs
    plan_all(world.store, programs, now, full_pass_every=world.config.full_pass_every)
    world.apply(campaign("drip", [send("one"), wait("1d", "first"), send("two")]))
    drain(world.store, programs, DEFAULT_LANE, lambda: now)  # this tick's programs: version 1
    member = world.member("drip", "u1")
    assert (member.state, member.position) == (State.ACTIVE, long_id)
    world.advance(DAY, every=6 * HOUR)
    member = world.member("drip", "u1")
    assert (member.state, member.exited_at) == (State.COMPLETED, MONDAY + 2 * DAY)
    assert member.exit_reason == "step removed"
    assert world.steps_sent("u1") == ["one", "two"]


def test_a_wait_lengthened_by_a_new_version_is_due_at_its_new_end(world):
    world.identify("u1", plan="free")
    world.apply(campaign("drip", [send("one"), wait("1d", "pause"), send("two")]))
    world.tick()
    world.apply(campaign("drip", [send("one"), wait("3d", "pause"), send("two")]))
    world.advance(DAY, every=6 * HOUR)  # the stored due time (1d) comes: not over yet
    member = world.member("drip", "u1")
    assert (member.position, member.next_due_at) == ("pause", MONDAY + 3 * DAY)
    # so the planner leaves the member alone until then
    assert list(world.store.due_members(world.ws, "drip", MONDAY + 3 * DAY - 1)) == []
    world.advance(2 * DAY, every=6 * HOUR)
    assert sent_at(world, "u1", "two") == MONDAY + 3 * DAY


@pytest.mark.parametrize(
    "definition",
    [
        # the schema: not a duration
        campaign("drip", [send("one"), wait("a while")]),
        # the workspace's types: plan is a string
        campaign("drip", [send("one")], audience={"attr": "plan", "gt": 3}),
        # a template that does not parse
        campaign("drip", [{"send": {"id": "one", "channel": "email", "body": "{{ user.plan"}}]),
        # two steps with one id
        campaign("drip", [send("one"), wait("1d", "one")]),
    ],
    ids=["schema", "types", "template", "ids"],
)
def test_a_definition_with_an_error_stores_nothing(world: World, definition):
    world.identify("u1", plan="free")
    world.apply(V1)
    world.tick()
    before = world.store.campaign(world.ws, "drip")
    with pytest.raises(InvalidInput):
        world.apply(definition)
    after = world.store.campaign(world.ws, "drip")
    assert (after.version, after.definition, after.status) == (1, before.definition, "active")
    assert world.member("drip", "u1").position == "cool-off"
    with pytest.raises(InvalidInput):  # nor a new campaign
        world.apply({**definition, "key": "other"})
    assert world.store.campaign(world.ws, "other") is None


def test_a_paused_campaign_does_nothing_until_resumed(world):
    world.identify("u1", plan="free")
    world.apply(V1)
    world.tick()
    world.store.set_campaign_status(world.ws, "drip", "paused", world.now())
    world.identify("u2", plan="free")  # would enter
    reports = world.advance(3 * DAY, every=12 * HOUR)  # u1's wait ends at 2d
    assert [(r.entered, r.advanced, r.queued) for r in reports] == [(0, 0, 0)] * 6
    assert world.steps_sent("u1") == ["one"]
    assert world.member("drip", "u2") is None
    member = world.member("drip", "u1")
    assert (member.state, member.position) == (State.ACTIVE, "cool-off")  # stays where it is
    world.store.set_campaign_status(world.ws, "drip", "active", world.now())
    world.advance(HOUR)
    assert world.steps_sent("u1") == ["one", "two"]
    assert sent_at(world, "u1", "two") == MONDAY + 3 * DAY + HOUR
    assert world.steps_sent("u2") == ["one"]


def test_an_archived_campaign_stays_archived_and_gets_no_new_version(world):
    world.identify("u1", plan="free")
    world.apply(V1)
    world.tick()
    set_status(world.store, world.ws, "drip", "archived", world.now())
    for status in ("active", "paused", "draft"):
        with pytest.raises(InvalidInput, match="campaign 'drip': archived, and archive is final"):
            set_status(world.store, world.ws, "drip", status, world.now())
    v2 = campaign("drip", [send("one"), send("two")])
    with pytest.raises(InvalidInput, match="campaign 'drip': archived"):
        world.apply(v2)
    with pytest.raises(InvalidInput, match="campaign 'drip': archived"):  # a plan made before
        apply(ApplyPlan(parse_campaign(v2), 2), world.store, world.ws, world.now())
    set_status(world.store, world.ws, "drip", "archived", world.now())  # again: a no-op
    row = world.store.campaign(world.ws, "drip")
    assert row is not None and (row.status, row.version) == ("archived", 1)
    world.identify("u2", plan="free")
    world.advance(3 * DAY, every=12 * HOUR)
    assert world.steps_sent("u1") == ["one"] and world.member("drip", "u2") is None


def test_batches_left_from_before_a_pause_are_skipped(world):
    world.identify("u1", plan="free")
    world.apply(V1)
    now = world.now()
    plan_all(world.store, world.runner.programs, now, full_pass_every=world.config.full_pass_every)
    world.store.set_campaign_status(world.ws, "drip", "paused", now)
    world.advance(HOUR)  # the next tick finds the batch planned before the pause
    assert batch_statuses(world) == ["skipped"]
    assert world.member("drip", "u1") is None
    assert world.outbox() == []


def batch_statuses(world: World) -> list[str]:
    b = batches.c
    query = select(b.status).where(b.workspace_id == world.ws).order_by(b.id)
    with world.store.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def test_a_wait_a_new_version_shortens_ends_sooner(world):
    world.identify("u1", plan="free")
    world.apply(V1)
    world.tick()
    world.apply(campaign("drip", [send("one"), wait("1d", "cool-off"), send("two")]))
    world.advance(1 * DAY, every=12 * HOUR)
    assert sent_at(world, "u1", "two") == MONDAY + 1 * DAY
