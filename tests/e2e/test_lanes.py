"""Lanes, on SQLite and PostgreSQL: a pinned lane, the lane that follows measured cost (two
thresholds), webhook and event-history campaigns starting slow, the slow lane's backlog
worked apart from the fast lane in `run`, and `campaign list`/`show` saying lane and why."""

from __future__ import annotations

import json
import re

from sqlalchemy import update

from drumbeat.choices import Lane
from drumbeat.pipeline.planner import plan_all
from drumbeat.store.schema import batches
from tests.e2e.helpers import PAID, campaign, outbox_keys, send, wait
from tests.e2e.test_cli_commands import cli  # noqa: F401  (the fixture)
from tests.e2e.test_cli_refusals import run
from tests.world import DAY, World

FREE_USERS = [{"user_id": f"f{i:04}", "traits": {"plan": "free"}} for i in range(1000)]
HOOK = send("hook", "webhook", url="https://hooks.example.com/drumbeat")
HISTORY = {"event": "logged_in", "count": {"gte": 1}, "within": "7d"}


def lane(world: World, key: str) -> tuple[str, str]:
    shown = world.db.campaigns.show(key)
    return shown.lane, shown.lane_why


def finished(world: World, key: str, ms_per_user: float, count: int = 10) -> None:
    """`count` batches of 10 users of `key`, done, each having taken `ms_per_user`."""
    now = world.now()
    with world.store.writing() as conn:
        parts = [[f"x{i}" for i in range(10)]] * count
        world.store.create_batches(conn, world.ws, key, "fast", "advance", parts, now, now)
        b = batches.c
        conn.execute(
            update(batches)
            .where(b.workspace_id == world.ws, b.campaign_key == key, b.status == "pending")
            .values(status="done", seconds=ms_per_user * 10 / 1000, finished_at=now)
        )


def test_the_lane_follows_measured_cost_across_two_thresholds(world):
    world.store.batch_size = 10  # a batch's worth of users measured: the cost counts
    world.apply(campaign("drip", [send("hello")], audience=PAID))  # no one: nothing planned
    world.tick()
    assert lane(world, "drip") == ("fast", "default")
    moves = []
    for ms in (1.0, 4.0, 8.0, 4.0, 1.0):  # defaults: slow above 5 ms/user, fast below 2
        finished(world, "drip", ms)
        world.tick()
        moves.append(lane(world, "drip")[0])
    assert moves == ["fast", "fast", "slow", "slow", "fast"]
    assert re.fullmatch(r"measured 1\.\d\d ms/user", lane(world, "drip")[1])


def test_a_pinned_lane_holds_whatever_the_cost(world):
    world.store.batch_size = 10  # a batch's worth of users measured: the cost counts
    world.apply(campaign("drip", [send("hello")], audience=PAID, lane="slow"))
    finished(world, "drip", 0.1)
    world.tick()
    assert lane(world, "drip") == ("slow", "pinned")
    world.apply(campaign("drip", [send("hello")], audience=PAID))  # unpinned: cost decides
    finished(world, "drip", 0.1)
    world.tick()
    assert lane(world, "drip") == ("fast", "measured 0.10 ms/user")


def test_webhook_and_event_history_campaigns_start_slow_until_measured(world):
    world.store.batch_size = 10  # a batch's worth of users measured: the cost counts
    world.identify("u1", plan="free")
    world.apply(campaign("hook", [wait("1d"), HOOK]))
    world.apply(campaign("history", [send("hi")], goal={"rule": HISTORY}))
    assert lane(world, "hook") == ("slow", "webhook until measured")
    assert lane(world, "history") == ("slow", "event history until measured")
    world.advance(3600, every=3600)
    assert {(b.campaign, b.lane) for b in world.db.batches()} == {
        ("hook", "slow"),
        ("history", "slow"),
    }
    finished(world, "hook", 0.5)  # after its real batch (one user): the average comes down
    world.tick()
    assert lane(world, "hook")[0] == "fast"
    assert lane(world, "hook")[1].startswith("measured ")


def test_a_slow_lane_backlog_does_not_delay_the_fast_lane(world):
    world.store.batch_size = 5
    world.db.identify_many(FREE_USERS)
    world.db.identify_many([{"user_id": f"p{i}", "traits": {"plan": "paid"}} for i in range(10)])
    world.apply(campaign("heavy", [send("hello"), wait("30d")], lane="slow"))
    world.apply(campaign("light", [send("hello"), wait("30d")], audience=PAID))
    now = world.now()
    runner = world.runner
    plan_all(world.store, runner.programs, now, full_pass_every=DAY, governor=runner.governor)
    runner.lanes.drain_fast(now)  # as `drumbeat run` ticks: back once the fast lane is empty
    light = [f"p{i}" for i in range(10)]
    assert len(world.store.load_members(world.ws, "light", light)) == 10
    counts = world.store.batch_counts(world.ws)
    assert counts.get("pending", 0) + counts.get("running", 0) > 0  # heavy: still at work
    world.runner.lanes.close()  # the slow lane finishes what it was given
    assert world.store.batch_counts(world.ws).keys() == {"done"}
    entered = [u for c, _, u, _, _ in outbox_keys(world) if c == "heavy"]
    assert sorted(entered) == [u["user_id"] for u in FREE_USERS]  # each once


def test_campaign_list_and_show_say_the_lane_and_why(cli, tmp_path):  # noqa: F811
    users = tmp_path / "users.jsonl"
    rows = [{"user_id": f"u{i}", "traits": {"plan": "free"}} for i in range(3)]
    users.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cli("clock", "--set", "2026-01-05T00:00:00Z")
    cli("import", "users", str(users))
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "drip.json").write_text(json.dumps(campaign("drip", [send("hello"), wait("1d")])))
    pinned = campaign("pinned", [send("hello")], lane="slow")
    (folder / "pinned.json").write_text(json.dumps(pinned))
    cli("campaign", "apply", "campaigns", "--activate")
    cli("advance", "--to", "2026-01-05T12:00:00Z", "--every", "6h")
    (tmp_path / "hook.json").write_text(json.dumps(campaign("hook", [HOOK])))
    cli("campaign", "apply", "hook.json")  # a draft: its lane as the first tick will choose
    listed = [
        json.loads(line) for line in cli("campaign", "list", "--format", "jsonl").splitlines()
    ]
    why = {row["key"]: (row["lane"], row["why"]) for row in listed}
    assert why["hook"] == ("slow", "webhook until measured")
    assert why["pinned"] == ("slow", "pinned")
    assert why["drip"] == ("fast", "default")  # 3 users measured: not a batch's worth
    assert "lane: slow (webhook until measured)" in cli("campaign", "show", "hook")
    assert Lane.SLOW in cli("campaign", "list")


def test_a_lane_not_fast_or_slow_is_refused_at_its_path(cli, tmp_path):  # noqa: F811
    (tmp_path / "bad.json").write_text(json.dumps(campaign("bad", [send("hi")], lane="medium")))
    err = cli("campaign", "apply", "bad.json", code=2)
    assert "bad.json: lane: expected one of 'fast' or 'slow'" in err
    assert "bad" not in cli("campaign", "list")


def test_thresholds_without_a_gap_are_refused(tmp_path):
    done = run(tmp_path, "campaign", "list", DRUMBEAT_LANE_FAST_BELOW_MS="6")
    assert done.returncode == 2 and not (tmp_path / "d.db").exists()
    assert "lane_fast_below_ms (6.0) must be below lane_slow_above_ms (5.0)" in done.stderr
