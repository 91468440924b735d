"""Who enters a campaign, and when: the audience at a tick, changed users, entry on an event,
re-entry, and users who already meet the goal."""

from __future__ import annotations

from drumbeat.engine.member import State
from drumbeat.model.records import EventRecord
from drumbeat.pipeline.planner import Changes
from tests.conftest import SEMANTICS_SHAPES
from tests.e2e.helpers import PAID, campaign, outbox_keys, send, sent_at, wait
from tests.world import DAY, HOUR, MONDAY

SHAPES = SEMANTICS_SHAPES  # the campaign semantics suite runs over Celery workers too

WELCOME = campaign("welcome", [send("hello"), wait("2d"), send("again")])


def test_users_matching_the_audience_enter_at_a_tick(world):
    world.identify("u1", plan="free")
    world.identify("u2", plan="paid")
    world.identify("u3")  # no plan at all: a missing attribute matches nothing
    world.apply(WELCOME)
    assert world.member("welcome", "u1") is None  # apply alone enters no one
    world.advance(HOUR)
    member = world.member("welcome", "u1")
    assert member is not None
    assert (member.state, member.entry_count, member.entered_at) == (State.ACTIVE, 1, MONDAY + HOUR)
    assert world.steps_sent("u1") == ["hello"]
    assert world.member("welcome", "u2") is None
    assert world.member("welcome", "u3") is None
    assert world.steps_sent("u2") == world.steps_sent("u3") == []


def test_a_user_who_comes_to_match_enters_at_the_next_tick(world):
    world.ticks_only()
    world.identify("u1", plan="paid")
    world.apply(WELCOME)
    world.advance(3 * HOUR)  # the campaign's first full pass is behind it
    assert world.member("welcome", "u1") is None
    world.identify("u1", plan="free")
    world.advance(HOUR)
    # an hour later, well before the next full pass (a day): found as a changed user
    member = world.member("welcome", "u1")
    assert member is not None and member.entered_at == MONDAY + 4 * HOUR
    assert world.steps_sent("u1") == ["hello"]


def test_entry_on_an_event_waits_for_the_event(world):
    world.ticks_only()
    world.identify("u1", plan="free")
    world.identify("u2", plan="paid")
    world.apply(campaign("on-signup", [send("hello")], entry={"on": {"event": "signed_up"}}))
    world.advance(DAY)
    assert world.member("on-signup", "u1") is None  # in the audience, but no event yet
    world.track("u1", "signed_up")
    world.track("u2", "signed_up")  # the event, but not the audience
    world.advance(HOUR)
    member = world.member("on-signup", "u1")
    assert member is not None and member.entered_at == MONDAY + DAY + HOUR
    assert world.steps_sent("u1") == ["hello"]
    assert world.member("on-signup", "u2") is None
    # entry is decided when the event arrives: matching the audience later does not enter
    world.identify("u2", plan="free")
    world.advance(2 * DAY)
    assert world.member("on-signup", "u2") is None
    assert world.steps_sent("u2") == []


def test_events_from_before_the_campaign_do_not_make_users_enter(world):
    world.identify("u1", plan="free")
    world.track("u1", "signed_up")
    world.advance(DAY)
    world.apply(campaign("on-signup", [send("hello")], entry={"on": {"event": "signed_up"}}))
    world.advance(HOUR)
    assert world.member("on-signup", "u1") is None


def test_an_event_whose_write_committed_after_a_tick_still_makes_its_user_enter(world):
    world.identify("u1", plan="free")
    world.apply(campaign("on-signup", [send("hello")], entry={"on": {"event": "signed_up"}}))
    world.advance(DAY)
    tick_time = world.now()
    # received half a minute before that tick, committed only after it (a slow transaction:
    # on PostgreSQL its event id can be lower than ids the tick already saw)
    late = EventRecord("u1", "signed_up", tick_time - 30, {}, None)
    world.store.write_events(world.ws, [late], tick_time - 30)
    world.advance(HOUR)
    member = world.member("on-signup", "u1")
    assert member is not None and member.entered_at == tick_time + HOUR


def test_reentry_never_means_one_entry(world):
    world.identify("u1", plan="free")
    world.apply(campaign("once", [send("hello")]))  # no goal: completed at once
    world.tick()
    assert world.member("once", "u1").state == State.COMPLETED
    world.advance(2 * DAY, every=6 * HOUR)
    world.identify("u1", plan="free", seen=1)  # a change puts the user in front of the planner
    world.advance(2 * DAY, every=6 * HOUR)
    member = world.member("once", "u1")
    assert (member.state, member.entry_count) == (State.COMPLETED, 1)
    assert world.steps_sent("u1") == ["hello"]


def test_reentry_after_a_duration_counts_from_the_exit(world):
    world.identify("u1", plan="free")
    world.apply(campaign("again", [send("hello")], entry={"reentry": "3d"}))
    world.tick()
    first = world.member("again", "u1")
    assert (first.state, first.entry_count, first.exited_at) == (State.COMPLETED, 1, MONDAY)
    world.identify("u1", plan="free", seen=1)  # changed users are looked at, and still wait
    world.advance(3 * DAY - HOUR, every=HOUR)
    assert world.member("again", "u1").entry_count == 1
    world.advance(HOUR)
    # 3d after the exit, on that tick's full audience pass
    second = world.member("again", "u1")
    assert (second.entry_count, second.entered_at) == (2, MONDAY + 3 * DAY)
    keys = outbox_keys(world)
    assert [(step, user, entry) for _, step, user, entry, _ in keys] == [
        ("hello", "u1", 1),
        ("hello", "u1", 2),
    ]
    assert keys[0][4] != keys[1][4]
    assert [key.rsplit("/", 1)[1] for *_, key in keys] == ["1", "2"]


def test_users_who_already_meet_the_goal_do_not_enter(world):
    world.identify("u1", plan="paid", country="FR")
    world.identify("u2", plan="free", country="FR")
    world.apply(
        campaign(
            "upsell",
            [send("offer")],
            audience={"attr": "country", "eq": "FR"},
            goal={"rule": PAID, "window": "2d"},
        )
    )
    world.advance(2 * DAY, every=6 * HOUR)
    assert world.member("upsell", "u1") is None
    assert world.steps_sent("u1") == []
    assert world.member("upsell", "u2") is not None
    assert world.steps_sent("u2") == ["offer"]


def test_a_user_time_alone_brings_into_the_audience_enters_without_a_full_pass(world):
    """`created_at before 3d ago` turns true with no write to the user: the tick finds it
    by the time flip, not by the weekly full pass."""
    world.identify("u1", plan="free", created_at=world.now() - DAY)
    world.apply(
        campaign("aged", [send("hello")], audience={"attr": "created_at", "before": "3d ago"})
    )
    world.tick()
    assert world.steps_sent("u1") == []
    world.advance(2 * DAY + 6 * HOUR, every=6 * HOUR)
    assert world.steps_sent("u1") == ["hello"]
    # `before` is strict: at MONDAY + 2d created_at is exactly 3 days old, not older
    assert sent_at(world, "u1", "hello") == MONDAY + 2 * DAY + 6 * HOUR


def test_a_user_whose_event_leaves_the_window_enters_without_a_full_pass(world):
    world.identify("u1", plan="free")
    world.track("u1", "logged_in")
    quiet = {
        "all": [{"attr": "plan", "eq": "free"}, {"not": {"event": "logged_in", "within": "1d"}}]
    }
    world.apply(campaign("quiet", [send("miss-you")], audience=quiet))
    world.advance(18 * HOUR, every=6 * HOUR)
    assert world.steps_sent("u1") == []
    world.advance(12 * HOUR, every=6 * HOUR)
    assert sent_at(world, "u1", "miss-you") == MONDAY + DAY + 6 * HOUR


def test_a_tick_looks_again_only_at_users_whose_changes_its_rules_read(world):
    for user in ("written", "reader", "other"):
        world.identify(user, plan="free")
    watermark = world.now() + 1
    world.advance(HOUR)
    world.identify("written", plan="paid")
    world.track("reader", "viewed_pricing")
    world.track("other", "logged_in")
    changes = Changes(world.store)
    # a user an event names for the first time is created by it: written, so looked at
    world.track("newcomer", "logged_in")
    # and one written in an attribute, by the campaigns that compare it only
    pricing, plan, logged_in = ("event", "viewed_pricing"), ("name", "plan"), ("event", "logged_in")
    assert sorted(changes.since(world.ws, watermark, {pricing})) == ["newcomer", "reader"]
    assert sorted(changes.since(world.ws, watermark, set())) == ["newcomer"]
    assert sorted(changes.since(world.ws, watermark, {plan})) == ["newcomer", "written"]
    assert sorted(changes.since(world.ws, watermark, {logged_in, pricing})) == [
        "newcomer",
        "other",
        "reader",
    ]
