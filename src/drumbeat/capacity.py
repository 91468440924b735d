"""The capacity model: what a tick costs at a target size, from what ticks cost as measured.

Pure: the measured costs (`Measured`, read from the timings every process writes, by
`measure`) and the target (`Target`) in, a `Capacity` of figures out. A tick is the unit:
every figure is per tick (an average over the measured ticks), then per second at the rate
ticks can run (every `tick_interval` seconds, or back to back when a tick takes longer).

How it scales (docs/cli.md, "The capacity model", says why):
- users processed per tick grow with users × campaigns (the same share of the users
  changes or comes due per campaign as measured); plans per tick with campaigns;
- batches are the users of a plan in batches of `batch_size`; messages per user processed
  and dispatch rounds per message are as measured;
- every query name is issued a fixed number of times per tick, per plan, per batch or per
  dispatch round (`UNITS`); its count grows with that unit;
- time: planning per user planned, batches per user processed (shared by the workers;
  a batch timed whole by its lane: claimed, worked, committed), dispatch per message (a
  round timed whole: claimed, sent, results recorded), the rest of a tick fixed (the idle
  tick's reads, the empty claims ending a drain); events per event.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from drumbeat.histogram import Histogram
from drumbeat.metrics import PLAN_STAGE, TICK_STAGE

BATCH = "stage.batch"
DISPATCH = "stage.dispatch"
PLAN_CAMPAIGN = "plan.campaign"
EVENT_QUERIES = ("store.write_events",)  # a `track` call's writes, per event
# Queries issued once per tick (the rest of a claim's count: the empty claim ending a drain).
PER_TICK = frozenset(
    {"planner.campaigns", "planner.changed_users", "planner.event_users", "planner.due_members"}
    | {"store.in_flight", "store.claim_batch", "store.claim_messages"}
)
PER_PLAN_PREFIXES = ("audience.", "planner.", "store.batch_costs", "store.busy_users")
PER_DISPATCH = frozenset({"store.claim_messages", "store.record_results", "store.take_tokens"})


def unit_of(name: str) -> str:
    """What a query's count follows: "dispatch", "batch" (claims: one per batch or round,
    the rest per tick), "tick" or "plan"; everything else is per batch."""
    if name in PER_DISPATCH:
        return "dispatch"
    if name in PER_TICK and not name.startswith("store.claim"):
        return "tick"
    if name.startswith(PER_PLAN_PREFIXES) and name not in PER_TICK:
        return "plan"
    return "batch"


@dataclass(frozen=True)
class Measured:
    users: int  # users of the workspace when measured
    campaigns: int  # its active campaigns
    stages: dict[str, Histogram]
    queries: dict[str, Histogram]
    lanes: dict[str, Histogram]  # per lane: batches' seconds, items = users
    workers: int  # fast-lane workers the measured ticks ran with (1: in the tick's process)


@dataclass(frozen=True)
class Target:
    users: int
    campaigns: int
    events_per_day: int
    batch_size: int
    tick_interval: float  # seconds between ticks
    workers: int | None  # None: as many as keep up with the tick interval
    store_queries_per_second: float  # what the store is stated to take
    cores: int  # CPU cores for the workers


@dataclass(frozen=True)
class Capacity:
    users_per_tick: float
    plans_per_tick: float
    batches_per_tick: float
    messages_per_tick: float
    store_queries_per_tick: float
    workers_per_lane: dict[str, int]
    tick_seconds: float
    ticks_per_hour: float
    messages_per_hour: float
    events_per_second: float
    event_queries_per_second: float | None  # None: no events were measured
    store_queries_per_second: float
    use: dict[str, float]  # resource → share of it used (above 1: it ran out)
    runs_out_first: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class NoTimings(ValueError):
    """The store holds no measured ticks to model from."""


def _total(found: dict[str, Histogram], name: str) -> Histogram:
    return found.get(name) or Histogram()


def _counts(m: Measured) -> dict[str, int]:
    """How many ticks, plans, batches and dispatch rounds were measured."""
    stages = (TICK_STAGE, PLAN_CAMPAIGN, BATCH, DISPATCH)
    return {
        unit: _total(m.stages, name).count
        for unit, name in zip(("tick", "plan", "batch", "dispatch"), stages, strict=True)
    }


def _queries(m: Measured, measured: dict[str, int], units: dict[str, float]) -> float:
    """Store queries per tick at the target's `units` (ticks, plans, batches, rounds)."""
    queries = 0.0
    for name, h in m.queries.items():
        unit = unit_of(name)
        if name in EVENT_QUERIES or not measured[unit]:
            continue
        if name.startswith("store.claim"):  # one per batch (round), the rest per tick
            once = min(h.count, measured[unit])
            queries += once / measured[unit] * units[unit] + (h.count - once) / measured["tick"]
        else:
            queries += h.count / measured[unit] * units[unit]
    return queries


def _lanes(m: Measured) -> dict[str, Histogram]:
    """Each lane's batches as measured (whole: claimed, worked, committed); items = users."""
    return {lane: h for lane, h in m.lanes.items() if h.items} or {"fast": _total(m.stages, BATCH)}


def _tick_seconds(m: Measured, users: float, messages: float, working: float) -> float:
    """A tick's time: its fixed part (what the measured ticks took beside planning, the
    lanes' batches and dispatch rounds), planning per user planned, the lanes' `working`
    seconds, dispatch per message (a round whole: claimed, sent, results recorded)."""
    ticks = _total(m.stages, TICK_STAGE)
    plan, campaign = _total(m.stages, PLAN_STAGE), _total(m.stages, PLAN_CAMPAIGN)
    batch, dispatch = _total(m.stages, BATCH), _total(m.stages, DISPATCH)
    lanes = max(h.total for h in _lanes(m).values()) / m.workers
    fixed = ticks.total - plan.total - dispatch.total - lanes
    planning = (plan.total - campaign.total) / ticks.count + campaign.total / batch.items * users
    sending = dispatch.total / dispatch.items * messages if dispatch.items else 0.0
    return max(0.0, fixed) / ticks.count + planning + working + sending


def _event_queries(m: Measured, events: float) -> float | None:
    written = [m.queries[n] for n in EVENT_QUERIES if n in m.queries and m.queries[n].items]
    if not written:
        return None
    return events * sum(h.count for h in written) / sum(h.items for h in written)


def model(m: Measured, t: Target) -> Capacity:
    measured = _counts(m)
    batch, dispatch = _total(m.stages, BATCH), _total(m.stages, DISPATCH)
    if not measured["tick"] or not batch.items:
        raise NoTimings("no ticks with batches measured")
    plans = measured["plan"] / measured["tick"] * t.campaigns / max(1, m.campaigns)
    users_per_plan = batch.items / max(1, measured["plan"]) * t.users / max(1, m.users)
    users = users_per_plan * plans
    messages = users * dispatch.items / batch.items
    units = {
        "tick": 1.0,
        "plan": plans,
        "batch": plans * math.ceil(users_per_plan / t.batch_size),
        "dispatch": messages * dispatch.count / dispatch.items if dispatch.items else 0.0,
    }
    queries = _queries(m, measured, units)
    lanes = {lane: h.total / batch.items * users for lane, h in _lanes(m).items()}
    workers = {
        lane: t.workers or max(1, math.ceil(seconds / t.tick_interval))
        for lane, seconds in lanes.items()
    }
    working = max(seconds / workers[lane] for lane, seconds in lanes.items())
    tick = _tick_seconds(m, users, messages, working)
    per_hour = 3600.0 / max(t.tick_interval, tick)
    events = t.events_per_day / 86400.0
    event_queries = _event_queries(m, events)
    per_second = queries * per_hour / 3600.0 + (event_queries or 0.0)
    use = {
        "store queries/s": per_second / t.store_queries_per_second,
        "worker CPU": sum(workers.values()) / t.cores,
        "tick time": tick / t.tick_interval,
    }
    return Capacity(
        users_per_tick=users,
        plans_per_tick=plans,
        batches_per_tick=units["batch"],
        messages_per_tick=messages,
        store_queries_per_tick=queries,
        workers_per_lane=workers,
        tick_seconds=tick,
        ticks_per_hour=per_hour,
        messages_per_hour=messages * per_hour,
        events_per_second=events,
        event_queries_per_second=event_queries,
        store_queries_per_second=per_second,
        use=use,
        runs_out_first=max(use, key=lambda k: use[k]),
    )
