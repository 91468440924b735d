"""Timings of every named query and stage: prometheus_client instruments plus exact summaries.

Prometheus histograms feed `/metrics`; the summaries keep a bounded sample per name so that
`drumbeat stats` and the demo report can print p50, p99 and max without a metrics server.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

QUERY_SECONDS = Histogram(
    "drumbeat_query_seconds",
    "Time spent in one named store, cache or index query.",
    ["query"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUERY_ITEMS = Counter(
    "drumbeat_query_items_total",
    "Rows or users handled by a named query.",
    ["query"],
    registry=REGISTRY,
)

TEMPLATE_MISSING = Counter(
    "drumbeat_template_missing_total",
    "Messages sent with a value their template writes missing for the user (written empty).",
    ["campaign", "step", "name"],
    registry=REGISTRY,
)

SAMPLE_SIZE = 4096
RECENT = 60.0  # seconds of timings `recent_quantile` looks at


@dataclass
class Summary:
    """Count, total, max and a uniform sample (reservoir) of one query's durations."""

    count: int = 0
    total: float = 0.0
    maximum: float = 0.0
    items: int = 0
    sample: list[float] = field(default_factory=list)

    def add(self, seconds: float, items: int, rng: random.Random) -> None:
        self.count += 1
        self.total += seconds
        self.items += items
        self.maximum = max(self.maximum, seconds)
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(seconds)
        else:
            slot = rng.randrange(self.count)
            if slot < SAMPLE_SIZE:
                self.sample[slot] = seconds

    def quantile(self, q: float) -> float:
        if not self.sample:
            return 0.0
        ordered = sorted(self.sample)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


_lock = threading.Lock()
_summaries: dict[str, Summary] = {}
_recent: dict[str, deque[tuple[float, float]]] = {}  # name → (monotonic time, seconds)
_rng = random.Random(0)


def observe(name: str, seconds: float, items: int = 0) -> None:
    QUERY_SECONDS.labels(name).observe(seconds)
    if items:
        QUERY_ITEMS.labels(name).inc(items)
    with _lock:
        _summaries.setdefault(name, Summary()).add(seconds, items, _rng)
        _remember(name, [seconds])


def _remember(name: str, durations: Iterable[float]) -> None:
    """Keep the last SAMPLE_SIZE timings of `name` with when they came (call with _lock)."""
    now = time.monotonic()
    _recent.setdefault(name, deque(maxlen=SAMPLE_SIZE)).extend((now, s) for s in durations)


def recent_quantile(names: Iterable[str], q: float, window: float = RECENT) -> float | None:
    """The `q` quantile of the timings of `names` taken in the last `window` seconds (a
    worker process's count from when its parent merged them); None if there are none."""
    since = time.monotonic() - window
    with _lock:
        values = sorted(s for n in names for at, s in _recent.get(n, ()) if at >= since)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


@contextmanager
def timed(name: str, items: int = 0) -> Iterator[None]:
    """Time the block under `name`; `items` is how many rows or users it handled."""
    start = time.perf_counter()
    try:
        yield
    finally:
        observe(name, time.perf_counter() - start, items)


def summaries() -> dict[str, Summary]:
    with _lock:
        return {
            name: Summary(s.count, s.total, s.maximum, s.items, list(s.sample))
            for name, s in sorted(_summaries.items())
        }


def export() -> dict[str, dict[str, Any]]:
    """The summaries as plain data, for a worker process to hand to its parent."""
    return {name: asdict(summary) for name, summary in summaries().items()}


def merge(exported: dict[str, dict[str, Any]]) -> None:
    """Add a worker process's summaries (from `export`) to this process's: counts, totals
    and maxima add up exactly; the samples are pooled and cut back to SAMPLE_SIZE at random.
    The Prometheus histograms get the child's sampled durations, which are all of them
    while a child times a name at most SAMPLE_SIZE times between two exports."""
    for name, data in exported.items():
        for seconds in data["sample"]:
            QUERY_SECONDS.labels(name).observe(seconds)
        if data["items"]:
            QUERY_ITEMS.labels(name).inc(data["items"])
    with _lock:
        for name, data in exported.items():
            into = _summaries.setdefault(name, Summary())
            into.count += data["count"]
            into.total += data["total"]
            into.items += data["items"]
            into.maximum = max(into.maximum, data["maximum"])
            _remember(name, data["sample"])
            pooled = into.sample + data["sample"]
            into.sample = _rng.sample(pooled, SAMPLE_SIZE) if len(pooled) > SAMPLE_SIZE else pooled


def reset() -> None:
    with _lock:
        _summaries.clear()
        _recent.clear()
