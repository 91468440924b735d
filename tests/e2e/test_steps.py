"""What members do between entry and exit: send, wait, branch, split and wait_until."""

from __future__ import annotations

from collections import Counter

import pytest

from drumbeat.engine.member import State
from tests.conftest import SEMANTICS_SHAPES
from tests.e2e.helpers import campaign, retire, send, sent_at, wait
from tests.world import DAY, HOUR, MONDAY, World

SHAPES = SEMANTICS_SHAPES  # the campaign semantics suite runs over Celery workers too


def test_a_wait_holds_the_next_send_until_the_first_tick_after_it(world):
    world.identify("u1", plan="free")
    world.apply(campaign("drip", [send("first"), wait("2d"), send("second")]))
    world.tick()
    assert sent_at(world, "u1", "first") == MONDAY
    assert world.member("drip", "u1").next_due_at == MONDAY + 2 * DAY
    world.advance(45 * HOUR, every=5 * HOUR)
    assert sent_at(world, "u1", "second") is None  # 45h: not yet
    world.advance(10 * HOUR, every=5 * HOUR)
    # ticks every 5h: 45h, 50h, 55h; the wait ends at 48h, so the send goes at 50h
    assert sent_at(world, "u1", "second") == MONDAY + 50 * HOUR
    assert world.steps_sent("u1") == ["first", "second"]


def test_a_branch_follows_an_attribute(world):
    world.identify("busy", plan="free", sessions=7)
    world.identify("idle", plan="free", sessions=1)
    world.identify("unknown", plan="free")  # no sessions: the condition is false
    branch = {
        "branch": {
            "id": "engaged",
            "if": {"attr": "sessions", "gte": 5},
            "then": [send("tips")],
            "else": [send("help", "in_app")],
        }
    }
    world.apply(campaign("nudge", [branch, send("bye")]))
    world.tick()
    assert world.steps_sent("busy") == ["tips", "bye"]
    assert world.steps_sent("idle") == ["help", "bye"]
    assert world.steps_sent("unknown") == ["help", "bye"]


def test_a_branch_follows_an_event_condition(world):
    for user in ("looked", "looked-long-ago", "never"):
        world.identify(user, plan="free")
    world.track("looked-long-ago", "viewed_pricing")
    world.advance(10 * DAY, every=5 * DAY)
    world.track("looked", "viewed_pricing")
    world.track("never", "opened_app")
    branch = {
        "branch": {
            "id": "pricing",
            "if": {"event": "viewed_pricing", "count": {"gte": 1}, "within": "7d"},
            "then": [send("discount")],
            "else": [send("tour")],
        }
    }
    world.apply(campaign("pricing", [branch]))
    world.tick()
    assert world.steps_sent("looked") == ["discount"]
    assert world.steps_sent("looked-long-ago") == ["tour"]  # 10 days ago: outside `within`
    assert world.steps_sent("never") == ["tour"]


SPLIT = campaign(
    "offer-test",
    [
        send("intro"),
        {
            "split": {
                "id": "offer",
                "paths": {
                    "a": {"weight": 70, "steps": [send("offer-a")]},
                    "b": {"weight": 20, "steps": [send("offer-b")]},
                    "control": {"weight": 10, "steps": []},
                },
            }
        },
    ],
)


def _paths(world: World) -> dict[str, str]:
    """user → split path, read from what each user was sent after the intro."""
    path = {user: "control" for user in {r["user_id"] for r in world.outbox()}}
    for row in world.outbox():
        if row["step_id"].startswith("offer-"):
            path[row["user_id"]] = row["step_id"].removeprefix("offer-")
    return path


def test_a_split_respects_weights_and_control_gets_nothing(world):
    users = [f"user-{i:03d}" for i in range(200)]
    world.db.identify_many({"user_id": u, "traits": {"plan": "free"}} for u in users)
    world.apply(SPLIT)
    world.tick()
    paths = _paths(world)
    assert sorted(paths) == users
    counts = Counter(paths.values())
    # 200 users, p = .7 / .2 / .1: five standard deviations either side
    assert 108 <= counts["a"] <= 172
    assert 20 <= counts["b"] <= 60
    assert 5 <= counts["control"] <= 35
    for user, path in paths.items():
        steps = world.steps_sent(user)
        assert steps == (["intro"] if path == "control" else ["intro", f"offer-{path}"])
        assert world.member("offer-test", user).state == State.COMPLETED


# The path of each user in workspace "split-golden": changing how users are assigned moves
# users between the arms of running experiments, so it must be a deliberate change.
GOLDEN_PATHS = {
    "user-000": "a",
    "user-001": "a",
    "user-002": "b",
    "user-003": "b",
    "user-004": "a",
    "user-005": "a",
    "user-006": "control",
    "user-007": "b",
    "user-008": "a",
    "user-009": "a",
    "user-010": "a",
    "user-011": "control",
}


def test_a_split_gives_each_user_the_same_path_on_every_run_and_database(tmp_path, pg_database):
    """The same workspace, campaign and users on SQLite, on PostgreSQL, and on SQLite again
    give the recorded paths."""
    runs = []
    for name, url in [
        ("sqlite-1", f"sqlite:///{tmp_path / 'one.db'}"),
        ("postgresql", pg_database),
        ("sqlite-2", f"sqlite:///{tmp_path / 'two.db'}"),
    ]:
        (tmp_path / name).mkdir()
        world = World(url, "split-golden", tmp_path / name)
        try:
            world.db.identify_many({"user_id": u, "traits": {"plan": "free"}} for u in GOLDEN_PATHS)
            world.apply(SPLIT)
            world.tick()
            runs.append(_paths(world))
        finally:
            retire(world)
            world.close()
    assert runs == [GOLDEN_PATHS] * 3


# Paths written in an order that PostgreSQL's JSONB does not keep (it puts shorter keys first)
REORDERED = campaign(
    "offer-reordered",
    [
        send("intro"),
        {
            "split": {
                "id": "offer",
                "paths": {
                    "treatment-long": {"weight": 50, "steps": [send("offer-treatment-long")]},
                    "b": {"weight": 30, "steps": [send("offer-b")]},
                    "control": {"weight": 20, "steps": []},
                },
            }
        },
    ],
)


def test_a_split_assigns_alike_on_both_stores_whatever_order_they_keep_its_paths_in(
    tmp_path, pg_database
):
    runs = []
    for name, url in [("sqlite", f"sqlite:///{tmp_path / 'one.db'}"), ("postgresql", pg_database)]:
        (tmp_path / name).mkdir()
        world = World(url, "split-order", tmp_path / name)
        try:
            users = [f"user-{i:03d}" for i in range(60)]
            world.db.identify_many({"user_id": u, "traits": {"plan": "free"}} for u in users)
            world.apply(REORDERED)
            world.tick()
            runs.append(_paths(world))
        finally:
            retire(world)
            world.close()
    sqlite_paths, postgresql_paths = runs
    assert len(sqlite_paths) == 60
    assert set(sqlite_paths.values()) == {"treatment-long", "b", "control"}
    assert sqlite_paths == postgresql_paths


@pytest.mark.parametrize("kind", ["event", "attribute"])
def test_wait_until_goes_on_at_the_first_tick_after_the_rule_holds(world, kind):
    world.ticks_only()
    rule = (
        {"event": "invited_teammate", "count": {"gte": 1}}
        if kind == "event"
        else {"attr": "teammates", "gte": 1}
    )
    world.identify("u1", plan="free", teammates=0)
    world.identify("u2", plan="free", teammates=0)
    world.apply(
        campaign(
            "invite",
            [send("ask"), {"wait_until": {"rule": rule, "timeout": "5d"}}, send("thanks")],
        )
    )
    world.tick()
    assert world.member("invite", "u1").next_due_at == MONDAY + 5 * DAY
    world.advance(DAY, every=HOUR)
    if kind == "event":
        world.track("u1", "invited_teammate")
    else:
        world.identify("u1", teammates=2)
    assert sent_at(world, "u1", "thanks") is None
    world.advance(30 * 60)  # the next tick, half an hour later
    assert sent_at(world, "u1", "thanks") == MONDAY + DAY + 30 * 60
    assert world.member("invite", "u1").state == State.COMPLETED
    # u2 never does it: goes on at the timeout, 5d after entry
    world.advance(4 * DAY - 30 * 60 - HOUR, every=6 * HOUR)
    assert sent_at(world, "u2", "thanks") is None
    world.advance(2 * HOUR, every=HOUR)
    assert sent_at(world, "u2", "thanks") == MONDAY + 5 * DAY
