"""`drumbeat stats` as data: the timings every process wrote into the store (store/timings.py)
over a span, merged exactly, with the rates worked out from them, and the lanes' depth.

- per name: count, p50, p99, max, total seconds, items (rows or users), the buckets;
- store queries per 1,000 users processed (users: those of the batches worked);
- users and messages per second, over the minutes something was timed in;
- per lane: pending and running batches, the age of the oldest waiting one;
- the cache hit rate, once a cache records `CACHE_HITS` / `CACHE_MISSES` (else None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drumbeat.choices import StatsBy
from drumbeat.histogram import Histogram
from drumbeat.timing_names import (
    BATCH_STAGE,
    CACHE_HITS,
    CACHE_MISSES,
    DISPATCH_STAGE,
    GLOBAL,
)

if TYPE_CHECKING:
    from drumbeat.capacity import Measured
    from drumbeat.store import Store
    from drumbeat.store.readonly import ReadOnlyStore


@dataclass(frozen=True)
class Lane:
    name: str
    pending: int
    running: int
    oldest_waiting: float | None  # seconds the oldest pending batch has waited


@dataclass(frozen=True)
class Stats:
    since: float  # seconds back from now
    by: str
    names: dict[str, Histogram]
    users: int
    messages: int
    queries: int
    active_seconds: float
    lanes: list[Lane]
    cache_hit_rate: float | None  # None: no cache recorded a hit or a miss

    def per_second(self, n: int) -> float | None:
        return n / self.active_seconds if self.active_seconds else None

    @property
    def queries_per_1000_users(self) -> float | None:
        return self.queries * 1000 / self.users if self.users else None

    def as_json(self) -> dict[str, Any]:
        return {
            "since_seconds": self.since,
            "by": self.by,
            "names": [
                {
                    "name": name,
                    "count": h.count,
                    "p50": h.quantile(0.5),
                    "p99": h.quantile(0.99),
                    "max": h.maximum,
                    "total": h.total,
                    "items": h.items,
                    "buckets": h.export()["buckets"],
                }
                for name, h in self.names.items()
            ],
            "users": self.users,
            "messages": self.messages,
            "store_queries": self.queries,
            "store_queries_per_1000_users": self.queries_per_1000_users,
            "active_seconds": self.active_seconds,
            "users_per_second": self.per_second(self.users),
            "messages_per_second": self.per_second(self.messages),
            "cache_hit_rate": self.cache_hit_rate,
            "lanes": [
                {
                    "lane": lane.name,
                    "pending": lane.pending,
                    "running": lane.running,
                    "oldest_waiting_seconds": lane.oldest_waiting,
                }
                for lane in self.lanes
            ],
        }


def read_stats(
    store: Store | ReadOnlyStore, ws: int, *, since: float, by: StatsBy, now: float, clock: float
) -> Stats:
    """The timings of the `since` seconds before `now` (real time), from the start of that
    minute; lanes aged on the store's `clock` (a virtual one, if set)."""
    start = (now - since) // 60 * 60
    shown = (GLOBAL,) if by in (StatsBy.QUERY, StatsBy.STAGE) else (ws,)
    listed = store.timing_totals(shown, by.value, start)
    stages = store.timing_totals((GLOBAL,), StatsBy.STAGE.value, start)
    queries = store.timing_totals((GLOBAL,), StatsBy.QUERY.value, start)
    counts = store.timing_totals((GLOBAL,), "count", start).by_name
    hits, misses = (counts[n].items if n in counts else 0 for n in (CACHE_HITS, CACHE_MISSES))
    empty = Histogram()
    return Stats(
        since=since,
        by=by.value,
        names=listed.by_name,
        users=stages.by_name.get(BATCH_STAGE, empty).items,
        messages=stages.by_name.get(DISPATCH_STAGE, empty).items,
        queries=sum(h.count for h in queries.by_name.values()),
        active_seconds=60.0 * stages.active_minutes,
        lanes=[
            Lane(lane, pending, running, None if oldest is None else max(0.0, clock - oldest))
            for lane, (pending, running, oldest) in store.lane_depths(ws).items()
        ],
        cache_hit_rate=None if hits + misses == 0 else hits / (hits + misses),
    )


def read_measured(store: Store, ws: int, *, since: float, now: float, workers: int) -> Measured:
    """What the capacity model starts from: the stage, query and lane timings of the `since`
    seconds before `now`, and the workspace's users and active campaigns now."""
    from drumbeat.capacity import Measured

    start = (now - since) // 60 * 60
    active = [row for row in store.active_campaigns({}) if row.workspace_id == ws]
    return Measured(
        users=store.count_users(ws),
        campaigns=len(active),
        stages=store.timing_totals((GLOBAL,), StatsBy.STAGE.value, start).by_name,
        queries=store.timing_totals((GLOBAL,), StatsBy.QUERY.value, start).by_name,
        lanes=store.timing_totals((ws,), StatsBy.LANE.value, start).by_name,
        workers=workers,
    )
