"""The planner looks at a changed user only for the campaigns whose rules read what changed
for them (issue #11): each write keeps the names it wrote on the user's row
(`store/names.py`), and a campaign looks at the users written in a name its rules compare.
`Plan.changed` is the users a campaign looked at because of a change."""

from __future__ import annotations

from drumbeat.pipeline.planner import Plan, plan_all
from tests.e2e.helpers import campaign, send, wait
from tests.world import HOUR, World

PLANS = campaign("plans", [send("hi"), wait("2d")], audience={"attr": "plan", "eq": "pro"})
CITIES = campaign("cities", [send("hi"), wait("2d")], audience={"attr": "city", "eq": "Rome"})


def settled(world: World) -> None:
    """Two users, two campaigns reading one attribute each, planned an hour ago: their
    watermarks are past the users' first writes."""
    world.ticks_only()
    for user in ("u1", "u2"):
        world.identify(user, plan="free", city="Oslo")
    world.apply(PLANS)
    world.apply(CITIES)
    world.advance(HOUR)
    passed(world)


def passed(world: World) -> None:
    """Ten minutes on, and planned twice: the watermarks (a minute behind each plan) are
    past every write so far."""
    for _ in range(2):
        world.clock.set(world.now() + 600)
        looked_at(world)


def looked_at(world: World, keys: tuple[str, ...] = ("plans", "cities")) -> dict[str, int]:
    """The users each campaign looked at for a change, at a plan of the tick now."""
    plans = plan_all(
        world.store,
        world.runner.programs,
        world.now(),
        full_pass_every=world.config.full_pass_every,
    )
    found = {plan.campaign: plan for plan in plans}
    return {key: found.get(key, Plan(key)).changed for key in keys}


def test_a_user_written_in_an_attribute_is_looked_at_by_the_campaigns_reading_it_only(world):
    settled(world)
    world.identify("u1", city="Rome")
    assert looked_at(world) == {"plans": 0, "cities": 1}
    passed(world)
    world.identify("u2", plan="pro", unrelated="x")
    assert looked_at(world) == {"plans": 1, "cities": 0}
    passed(world)
    world.identify("u2", unrelated="y")  # read by no campaign: looked at by none
    assert looked_at(world) == {"plans": 0, "cities": 0}


def test_a_user_written_twice_between_ticks_is_looked_at_for_both_writes(world):
    settled(world)
    world.identify("u1", city="Rome")
    world.clock.set(world.now() + 60)
    world.identify("u1", plan="pro")
    assert looked_at(world) == {"plans": 1, "cities": 1}
    world.tick()
    assert world.member("plans", "u1") is not None and world.member("cities", "u1") is not None


def test_a_new_user_is_looked_at_by_every_campaign(world):
    settled(world)
    world.identify("u3", unrelated="x")  # the audience may take a user whatever it is given
    assert looked_at(world) == {"plans": 1, "cities": 1}


def test_names_started_again_after_an_hour_say_nothing_of_the_writes_before(world):
    settled(world)
    world.identify("u1", city="Lima")
    world.clock.set(world.now() + 2 * HOUR)  # no tick meanwhile: the watermarks stay behind
    world.identify("u1", plan="basic")  # its names start again: "plan" only
    assert looked_at(world) == {"plans": 1, "cities": 1}


def test_a_campaign_activated_after_the_changes_sees_everyone(world):
    settled(world)
    world.identify("u1", plan="pro")
    world.apply(campaign("oslo", [send("hi"), wait("2d")], audience={"attr": "city", "eq": "Oslo"}))
    world.tick()
    assert world.member("oslo", "u1") is not None and world.member("oslo", "u2") is not None


def test_a_time_zone_written_is_looked_at_by_the_campaigns_with_a_send_window(world):
    hours = {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00"}
    settled(world)
    world.apply(
        campaign("hours", [send("hi")], audience={"attr": "plan", "eq": "x"}, send_window=hours)
    )
    world.tick()  # its first full pass
    passed(world)
    world.identify("u1", timezone="Asia/Tokyo")  # a held send is timed by it
    assert looked_at(world, ("plans", "cities", "hours")) == {"plans": 0, "cities": 0, "hours": 1}
