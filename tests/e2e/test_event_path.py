"""The one-user event path: identify and track decide for their user in the same call, on
SQLite and PostgreSQL, never where an unfinished batch holds the user, never twice."""

from __future__ import annotations

from drumbeat.engine.member import State
from drumbeat.model.records import UserRecord
from drumbeat.pipeline.events import EventPath, Touched, concerns
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from tests.e2e.helpers import campaign, outbox_keys, send, wait
from tests.world import DAY, MONDAY

PRO = {"rule": {"attr": "plan", "eq": "pro"}}


def welcome_on(event: str) -> dict:
    return {
        "key": "welcome",
        "name": "welcome",
        "audience": {"all": []},
        "entry": {"on": {"event": event}},
        "steps": [send("hello"), wait("2d"), send("again")],
    }


def test_an_event_enters_its_user_and_sends_in_the_same_call(world):
    world.apply(welcome_on("signed_up"))
    world.track("u1", "signed_up")
    member = world.member("welcome", "u1")
    assert member is not None and member.state is State.ACTIVE and member.entered_at == MONDAY
    assert world.steps_sent("u1") == ["hello"]
    world.track("u2", "opened_app")  # an event the campaign does not start on
    assert world.member("welcome", "u2") is None
    world.tick()  # the tick sees the same event: nothing new, nothing twice
    assert world.steps_sent("u1") == ["hello"]
    assert len({key for *_, key in outbox_keys(world)}) == len(outbox_keys(world)) == 1


def test_a_goal_is_met_in_the_call_that_meets_it(world):
    world.identify("u1", plan="free")
    world.apply(campaign("upsell", [send("offer"), wait("3d"), send("reminder")], goal=PRO))
    world.tick()
    assert world.member("upsell", "u1").state is State.ACTIVE
    world.identify("u1", plan="pro")
    member = world.member("upsell", "u1")
    assert member.state is State.CONVERTED and member.exit_reason == "goal"
    world.advance(4 * DAY, every=DAY)
    assert world.steps_sent("u1") == ["offer"]


def test_wait_until_goes_on_when_its_event_is_tracked(world):
    world.identify("u1", plan="free")
    until = {
        "wait_until": {
            "id": "bought",
            "rule": {"event": "purchased", "count": {"gte": 1}},
            "timeout": "7d",
        }
    }
    world.apply(campaign("thanks", [until, send("thank-you")]))
    world.tick()
    assert world.member("thanks", "u1").position == "bought"
    world.track("u1", "purchased")
    assert world.steps_sent("u1") == ["thank-you"]


def test_an_audience_campaign_takes_in_a_user_whose_change_it_reads(world):
    world.apply(campaign("drip", [send("first")]))
    world.tick()
    world.identify("u1", plan="free")  # plan: the audience reads it
    assert world.steps_sent("u1") == ["first"]
    world.identify("u2", color="blue")  # not read by any rule: left to the tick
    world.identify("u2", plan="free", color="red")
    assert world.steps_sent("u2") == ["first"]


def test_a_user_held_by_an_unfinished_batch_is_left_to_it(world):
    world.identify("u1", plan="free")
    world.apply(campaign("upsell", [send("offer"), wait("3d"), send("reminder")], goal=PRO))
    world.tick()
    world.advance(3 * DAY + 1, every=3 * DAY + 1)  # due now
    with world.store.writing() as conn:  # planned, not yet worked: the batch holds u1
        world.store.create_batches(
            conn, world.ws, "upsell", "held", "advance", [["u1"]], world.now(), world.now()
        )
    path = EventPath(world.store, max_users=10)
    world.store.write_users(world.ws, [UserRecord("u1", {}, {"plan": "pro"})], world.now())
    reaction = path.react(world.ws, [UserRecord("u1", {}, {"plan": "pro"})], (), world.now())
    assert (reaction.held, reaction.decided) == (1, 0)
    assert world.member("upsell", "u1").state is State.ACTIVE


def test_a_call_naming_more_users_than_the_setting_waits_for_the_tick(world):
    world.apply(welcome_on("signed_up"))
    path = EventPath(world.store, max_users=1)
    calls = [{"user_id": u, "event": "signed_up"} for u in ("a", "b")]
    world.db.event_path = path
    world.db.track_many(calls)
    assert world.member("welcome", "a") is None
    world.tick()
    assert world.member("welcome", "a") is not None


def test_only_campaigns_whose_rules_read_the_change_are_concerned(world):
    world.apply(campaign("upsell", [send("offer")], goal=PRO))
    world.apply(welcome_on("signed_up"))
    programs = {p.key: p for p in _programs(world)}
    plan = {"u": Touched(names={"plan"})}
    color = {"u": Touched(names={"color"})}
    signed = {"u": Touched(events={"signed_up"})}
    assert concerns(programs["upsell"], plan).entering == {"u"}
    assert concerns(programs["upsell"], color) is None
    assert concerns(programs["welcome"], plan) is None
    assert concerns(programs["welcome"], signed).entering == {"u"}

    from drumbeat.pipeline.events import WorkspacePrograms

    workspace = WorkspacePrograms(world.store, world.ws)  # only those are looked at
    with world.store.writing() as conn:
        workspace.current(conn)
    assert [p.key for p in workspace.reading(plan)] == ["upsell"]
    assert [p.key for p in workspace.reading(signed)] == ["welcome"]
    assert workspace.reading(color) == []
    both = {"u": Touched(names={"plan"}), "v": Touched(events={"signed_up"})}
    assert sorted(p.key for p in workspace.reading(both)) == ["upsell", "welcome"]


def _programs(world):  # type: ignore[no-untyped-def]
    from drumbeat.pipeline.events import WorkspacePrograms

    with world.store.writing() as conn:
        return WorkspacePrograms(world.store, world.ws).current(conn)


def test_the_tick_and_the_event_path_racing_never_both_act_on_a_membership(world):
    """A tick works the members due (batches of 10) while identify calls convert the same
    members one by one, in the batches' order. A membership the event path converted is
    never overwritten by a batch decided from before it (with the batches' holds ignored,
    some are); every message goes once; a last tick settles the rest."""
    import sys
    import threading

    users = [f"u{n:03}" for n in range(120)]
    world.store.batch_size = 10
    world.db.identify_many({"user_id": u, "traits": {"plan": "free"}} for u in users)
    world.apply(campaign("upsell", [send("offer"), wait("1d"), send("reminder")], goal=PRO))
    world.tick()
    world.clock.set(MONDAY + DAY + 60)  # every member is due: the tick sends the reminder
    now = world.now()
    path = EventPath(world.store, max_users=1)
    converted, failures = [], []

    def identify_all() -> None:
        try:
            for user in users:
                record = UserRecord(user, {}, {"plan": "pro"})
                world.store.write_users(world.ws, [record], now)
                if path.react(world.ws, [record], (), now).decided:
                    converted.append(user)
        except Exception as exc:  # reported below, in the test's thread
            failures.append(exc)

    # the tick's planning, then its batches worked while the calls run (threads switched
    # often, so that calls land between a batch's read and its write)
    plan_all(world.store, world.runner.programs, now, full_pass_every=7 * DAY)
    calls = threading.Thread(target=identify_all)
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        calls.start()
        list(world.runner.executor.drain(DEFAULT_LANE, now))
        calls.join(timeout=120)
    finally:
        sys.setswitchinterval(switching)
    assert not calls.is_alive() and not failures
    assert converted  # the race did meet: the event path decided for some
    members = world.store.load_members(world.ws, "upsell", users)
    overwritten = [u for u in converted if members[u].state is not State.CONVERTED]
    assert overwritten == []
    world.runner.tick(now)  # what was left to the batches (decided from before) is settled
    members = world.store.load_members(world.ws, "upsell", users)
    assert {m.state for m in members.values()} == {State.CONVERTED}
    keys = outbox_keys(world)
    assert len({key for *_, key in keys}) == len(keys)
    assert {step for _, step, *_ in keys} <= {"offer", "reminder"}


def test_the_frequency_cap_holds_across_the_campaigns_of_one_call(world):
    """Two campaigns start on one event; with a cap of one message a week, the call queues
    the first campaign's message and holds the second's until the cap lets it go."""
    world.cap(1, 7 * DAY)
    first, second = welcome_on("signed_up"), welcome_on("signed_up")
    second.update(key="welcome-too", name="welcome-too")
    world.apply(first)
    world.apply(second)
    world.track("u1", "signed_up")
    assert len(world.outbox()) == 1
    held = [world.member(key, "u1") for key in ("welcome", "welcome-too")]
    assert all(m is not None and m.state is State.ACTIVE for m in held)
    waiting = [m for m in held if not m.last_step]
    assert len(waiting) == 1 and waiting[0].next_due_at == MONDAY + 7 * DAY
