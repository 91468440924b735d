"""The governor: how much the planner may hand out on a tick, to whom first, in which lane.

- Caps: a campaign has at most `campaign_batches_in_flight` batches unfinished (pending or
  running), a workspace `workspace_batches_in_flight`; the planner writes no more.
- Ramp: a newly activated campaign lets in `ramp_start` users on its first tick, then
  `ramp_factor` times more each tick, until the caps govern it: a 10M-user launch ramps up
  instead of flooding the store.
- Back-off: while the p99 of the batch queries of the last minute is above `backoff_p99`
  seconds, the caps are halved each tick (down to one batch), and doubled back each tick
  once it is below.
- Round-robin: a batch's `turn` orders the claims. A campaign's batches get turns one
  round apart (a round is the workspace's active campaigns), starting after its own
  unfinished ones, and no earlier than the lane's oldest unfinished turn: every workspace
  gets a batch per round, shared among its campaigns, so a small workspace is not queued
  behind a large one that planned first.

Users held back by a cap or the ramp are not lost: the planner keeps the campaign's
watermark where it was, so the next tick sees them again (pipeline/planner.py).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from drumbeat import metrics
from drumbeat.choices import Lane
from drumbeat.config import Settings
from drumbeat.pipeline import lanes
from drumbeat.pipeline.programs import Programs
from drumbeat.store import Store
from drumbeat.store.campaigns import CampaignRow
from drumbeat.store.lanes import Cost, LaneRow

# The queries a batch's work makes: the store is slow when these are.
BATCH_QUERIES = (
    "store.claim_batch",
    "store.load_users",
    "store.load_members",
    "store.event_counts",
    "store.commit_batch",
)


@dataclass(frozen=True)
class Admitted:
    """What a campaign may plan on this tick: its lane, the users it may hand out, whether
    some were held back, and the claim turns of its batches."""

    lane: str
    entering: list[str]
    advancing: list[str]
    held: bool
    first_turn: float
    step: float

    def turns(self, kind: str, batch_size: int) -> dict[str, Any]:
        """`create_batches`' turn arguments: advance batches first, then enter batches."""
        before = 0 if kind == "advance" else math.ceil(len(self.advancing) / batch_size)
        return {"first_turn": self.first_turn + before * self.step, "turn_step": self.step}


class Governor:
    """Decides per tick (`begin_tick`) and per campaign (`admit`); remembers the back-off
    and the lane rows between ticks, and reads what is in flight each tick."""

    def __init__(self, store: Store, config: Settings) -> None:
        self.store = store
        self.config = config
        self.limits = lanes.Thresholds(
            config.lane_slow_above_ms / 1000, config.lane_fast_below_ms / 1000
        )
        self.factor = 1.0  # the share of the caps in force (back-off)
        self._stored: dict[tuple[int, str], LaneRow] = {}  # kept across ticks
        self._epoch = -1  # of the programs the rows were read with
        self._last: int | None = None  # the last batch id at the last tick
        self._behind: set[tuple[int, str]] = set()  # batches planned or unfinished
        self._ramping: set[tuple[int, str]] = set()
        self._allowance: dict[tuple[int, str], int | None] = {}
        self._campaign: Counter[tuple[int, str]] = Counter()  # batches in flight
        self._workspace: Counter[int] = Counter()
        self._last_turn: dict[tuple[int, str], float] = {}
        self._lane_turn: dict[str, float] = {}  # the lane's oldest unfinished turn
        self._round: Counter[int] = Counter()  # active campaigns per workspace

    def begin_tick(self, programs: Programs, now: float) -> None:
        """Read what is in flight, measure the batches finished since the last tick, choose
        the lanes, move the ramps on, and back off if the store is slow. The lane rows are
        kept across ticks (read again with the campaigns): a tick measures the campaigns
        with batches planned or unfinished since, and those ramping, not all of them."""
        self._back_off()
        last = self.store.last_batch_id()  # first: a batch made after it is above it
        flights = self.store.in_flight()
        self._campaign, self._workspace = Counter(), Counter()
        self._last_turn, self._lane_turn = {}, {}
        first_unfinished: dict[tuple[int, str], int] = {}
        for f in flights:
            key = (f.workspace_id, f.campaign_key)
            self._campaign[key] += f.batches
            self._workspace[f.workspace_id] += f.batches
            self._last_turn[key] = max(self._last_turn.get(key, f.last_turn), f.last_turn)
            self._lane_turn[f.lane] = min(self._lane_turn.get(f.lane, f.first_turn), f.first_turn)
            first_unfinished[key] = min(first_unfinished.get(key, f.first_id), f.first_id)
        measuring = self._behind | first_unfinished.keys() | self._ramping
        choosing = set(measuring)
        if self._epoch != programs.epoch:  # the campaigns were read again: their rows too
            self._epoch = programs.epoch
            rows = programs.rows()
            self._round = Counter(row.workspace_id for row in rows)
            self._stored = self.store.lane_rows()
            choosing.update((row.workspace_id, row.key) for row in rows)
            fresh = self._last is None  # a new governor measures every campaign
            measuring.update(key for key in choosing if fresh or key not in self._stored)
        floors = [self._stored[k].measured_through for k in measuring if k in self._stored]
        if self._last is not None:  # the batches made since the last tick, by any process
            floors.append(self._last)
        costs: dict[tuple[int, str], list[Cost]] = {}
        if floors and min(floors) < last:
            for cost in self.store.batch_costs(min(floors)):
                costs.setdefault((cost.workspace_id, cost.campaign_key), []).append(cost)
        measuring.update(costs)
        choosing.update(costs)
        self._last = last
        self._allowance, self._behind, changed = {}, set(), []
        for key in sorted(choosing):
            program = programs.get(*key)
            if program is None:
                continue
            through = first_unfinished.get(key, last + 1) - 1
            old = self._stored.get(key) or self._new_row(key, through, now)
            new = old
            if key in measuring:
                new = lanes.measure(old, costs.get(key, []), through, self.store.batch_size)
            lane, reason = lanes.choose(program.campaign, new, self.limits, self.store.batch_size)
            self._allowance[key] = new.ramp
            new = replace(new, lane=lane, reason=reason, ramp=self._next_ramp(new.ramp))
            if new != old or key not in self._stored:
                changed.append(replace(new, updated_at=now))
            self._stored[key] = new
            (self._ramping.add if new.ramp is not None else self._ramping.discard)(key)
            if key in first_unfinished:  # measured again once they are finished
                self._behind.add(key)
        if changed:
            with self.store.writing() as conn:
                self.store.save_lane_rows(conn, changed)

    def admit(self, row: CampaignRow, entering: list[str], advancing: list[str]) -> Admitted:
        """Cut a campaign's users down to what the caps and its ramp allow this tick (due
        members first: those who entered already wait for their messages), and give the
        batches their turns."""
        key, ws = (row.workspace_id, row.key), row.workspace_id
        size = self.store.batch_size
        room = max(
            0,
            min(
                self._cap(self.config.campaign_batches_in_flight) - self._campaign[key],
                self._cap(self.config.workspace_batches_in_flight) - self._workspace[ws],
            ),
        )
        moving = advancing[: min(math.ceil(len(advancing) / size), room) * size]
        room -= math.ceil(len(moving) / size)
        allowed = room * size
        if (allowance := self._allowance.get(key)) is not None:
            allowed = min(allowed, allowance)
            self._allowance[key] = allowance - min(allowed, len(entering))
        coming = entering[:allowed]
        planned = math.ceil(len(moving) / size) + math.ceil(len(coming) / size)
        self._campaign[key] += planned
        self._workspace[ws] += planned
        lane = self._stored[key].lane if key in self._stored else Lane.FAST
        step = float(max(1, self._round[ws]))
        first = max(self._lane_turn.get(lane, 0.0), self._last_turn.get(key, -math.inf) + step)
        if planned:
            self._last_turn[key] = first + (planned - 1) * step
            self._behind.add(key)  # measured at the next tick
        held = len(moving) < len(advancing) or len(coming) < len(entering)
        return Admitted(lane, coming, moving, held, first, step)

    def _cap(self, cap: int) -> int:
        return max(1, int(cap * self.factor))

    def _back_off(self) -> None:
        p99 = metrics.recent_quantile(BATCH_QUERIES, 0.99)
        if p99 is not None and p99 > self.config.backoff_p99:
            self.factor /= 2
        else:
            self.factor = min(1.0, self.factor * 2)

    def _next_ramp(self, ramp: int | None) -> int | None:
        """The next tick's entry allowance; None once the caps let in fewer anyway."""
        if ramp is None:
            return None
        grown = int(ramp * self.config.ramp_factor)
        ceiling = self.config.campaign_batches_in_flight * self.store.batch_size
        return grown if grown < ceiling else None

    def _new_row(self, key: tuple[int, str], through: int, now: float) -> LaneRow:
        """A campaign seen for the first time: not measured, its ramp at its start."""
        return LaneRow(*key, "", "", None, 0, through, self.config.ramp_start, now)
