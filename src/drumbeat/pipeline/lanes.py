"""Which lane a campaign's batches go to, and why.

A definition may pin one (`lane: slow`). Otherwise the lane follows measured cost: a moving
average of the seconds per user of the campaign's finished batches, with two thresholds
(hysteresis) so that a campaign near one does not flap: it moves to `slow` above
`lane_slow_above_ms`, and back to `fast` only below `lane_fast_below_ms`. Until a batch's
worth of its users is measured (a few small batches say more about fixed costs than about
the campaign), a campaign that sends to webhooks, or whose rules read per-user event
history, is in `slow`; any other in `fast`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from drumbeat.choices import Lane
from drumbeat.model.campaign import Branch, Campaign, Send, WaitUntil, walk_steps
from drumbeat.model.rules import Rule
from drumbeat.store.lanes import Cost, LaneRow

WEIGHT = 0.3  # of each new batch in the moving average: about the last 6 batches count

PINNED, MEASURED, WEBHOOK, HISTORY, DEFAULT = "pinned", "measured", "webhook", "history", "default"


@dataclass(frozen=True)
class Thresholds:
    slow_above: float  # seconds per user
    fast_below: float


def rules(campaign: Campaign) -> Iterable[Rule]:
    """Every rule the campaign's members are checked against."""
    yield campaign.audience
    if campaign.goal is not None:
        yield campaign.goal.rule
    for _, _, step in walk_steps(campaign.steps):
        if isinstance(step, Branch):
            yield step.branch.if_
        elif isinstance(step, WaitUntil):
            yield step.wait_until.rule


def unmeasured(campaign: Campaign) -> tuple[str, str]:
    """The lane and reason of a campaign not measured yet."""
    if campaign.lane is not None:
        return campaign.lane, PINNED
    if any(
        isinstance(s, Send) and s.send.channel == "webhook"
        for _, _, s in walk_steps(campaign.steps)
    ):
        return Lane.SLOW, WEBHOOK
    if any(rule.event_conditions() for rule in rules(campaign)):
        return Lane.SLOW, HISTORY
    return Lane.FAST, DEFAULT


def choose(campaign: Campaign, row: LaneRow, limits: Thresholds, full: int) -> tuple[str, str]:
    """The lane and reason of a campaign whose lane row is `row` (its cost measured so far):
    measured once a batch's worth of users (`full`) is."""
    first = unmeasured(campaign)
    if first[1] == PINNED or row.cost is None or row.measured < full:
        return first
    lane = row.lane if row.reason != PINNED else first[0]
    if lane == Lane.FAST and row.cost > limits.slow_above:
        lane = Lane.SLOW
    elif lane == Lane.SLOW and row.cost < limits.fast_below:
        lane = Lane.FAST
    return lane, MEASURED


def measure(row: LaneRow, costs: Iterable[Cost], through: int, full: int) -> LaneRow:
    """`row` with the campaign's finished batches `costs` (oldest first) in its moving
    average, those after its `measured_through` up to `through`: every batch of the
    campaign up to `through` is finished, so each is counted once. Until `full` users are
    measured the average is by user over all of them; then each batch weighs WEIGHT, less
    when it has fewer than `full` users (its fixed costs are spread over fewer of them)."""
    cost, measured = row.cost, row.measured
    for c in costs:
        if row.measured_through < c.batch_id <= through and c.users:
            each = c.seconds / c.users
            if cost is None or measured < full:  # the first batch's worth: all of it, by user
                cost = ((cost or 0.0) * measured + c.seconds) / (measured + c.users)
            else:
                weight = WEIGHT * min(1.0, c.users / full)
                cost = (1 - weight) * cost + weight * each
            measured += c.users
    return replace(
        row, cost=cost, measured=measured, measured_through=max(row.measured_through, through)
    )


def why(reason: str, cost: float | None) -> str:
    """What `campaign show` and `campaign list` say of a campaign's lane."""
    if reason == MEASURED and cost is not None:
        return f"measured {cost * 1000:.2f} ms/user"
    if reason in (WEBHOOK, HISTORY):
        return f"{'webhook' if reason == WEBHOOK else 'event history'} until measured"
    return reason


def lane_of(campaign: Campaign, row: LaneRow | None) -> tuple[str, str]:
    """A campaign's lane and why, as `campaign show` and `campaign list` say them: as the
    last tick chose (`row`), or as the next will for a campaign no tick planned yet (or
    whose new version pins one)."""
    if row is None or campaign.lane is not None:
        lane, reason = unmeasured(campaign)
        return lane, why(reason, None)
    return row.lane, why(row.reason, row.cost)
