"""The lane's choice, pure: pinned, unmeasured (webhook, event history, default), and the
moving average with its two thresholds and its weighting of small batches."""

from __future__ import annotations

from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.lanes import Thresholds, choose, measure, unmeasured, why
from drumbeat.store.lanes import Cost, LaneRow

LIMITS = Thresholds(slow_above=0.005, fast_below=0.002)
FULL = 100
BASE = {"key": "c", "name": "c", "audience": {"attr": "plan", "eq": "free"}}
EMAIL = {"send": {"id": "s", "channel": "email", "subject": "s", "body": "s"}}
HOOK = {"send": {"id": "h", "channel": "webhook", "url": "https://x.example/h", "body": "s"}}


def definition(*steps: dict, **extra: object):
    return parse_campaign({**BASE, "steps": list(steps), **extra})


def fed(row: LaneRow, ms_per_user: float, batches: int = 10, users: int = FULL) -> LaneRow:
    first = row.measured_through + 1
    costs = [
        Cost(1, "c", i, ms_per_user * users / 1000, users) for i in range(first, first + batches)
    ]
    return measure(row, costs, first + batches - 1, FULL)


def test_unmeasured_lanes_say_why():
    assert unmeasured(definition(EMAIL)) == ("fast", "default")
    assert unmeasured(definition(EMAIL, lane="slow")) == ("slow", "pinned")
    assert unmeasured(definition(HOOK)) == ("slow", "webhook")
    goal = {"rule": {"event": "paid", "count": {"gte": 1}, "within": "7d"}}
    assert unmeasured(definition(EMAIL, goal=goal)) == ("slow", "history")
    assert why("history", None) == "event history until measured"


def test_two_thresholds_keep_a_campaign_from_flapping():
    campaign = definition(EMAIL)
    row = LaneRow(1, "c", "fast", "default", None, 0, 0, None, 0.0)
    lanes = []
    for ms in (1.0, 4.0, 8.0, 4.0, 1.0):
        row = fed(row, ms)
        lane, reason = choose(campaign, row, LIMITS, FULL)
        row = LaneRow(1, "c", lane, reason, row.cost, row.measured, row.measured_through, None, 0)
        lanes.append(lane)
    assert lanes == ["fast", "fast", "slow", "slow", "fast"]
    assert why(row.reason, row.cost).startswith("measured 1.")


def test_a_few_small_batches_do_not_decide():
    row = LaneRow(1, "c", "fast", "default", None, 0, 0, None, 0.0)
    row = fed(row, 50.0, batches=3, users=3)  # fixed costs over 3 users: 50 ms a user
    assert choose(definition(EMAIL), row, LIMITS, FULL) == ("fast", "default")  # 9 users
    row = fed(row, 1.0, batches=2)  # then full batches: they weigh more
    assert row.cost is not None and row.cost < 0.005
    assert choose(definition(EMAIL), row, LIMITS, FULL)[1] == "measured"


def test_each_batch_counts_once():
    row = LaneRow(1, "c", "fast", "default", None, 0, 0, None, 0.0)
    once = fed(row, 1.0, batches=3)
    again = measure(once, [Cost(1, "c", 2, 9.0, FULL)], 3, FULL)
    assert again.measured == once.measured == 3 * FULL and again.cost == once.cost
