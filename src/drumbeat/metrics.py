"""Timings of every named query and stage: prometheus_client instruments, exact summaries
per name for this process, and the rows the store keeps for `drumbeat stats`.

- Prometheus histograms feed `/metrics` (drumbeat.metrics_server; in multiprocess mode
  each process writes its own, and the server adds them up): `drumbeat.instruments`, fed
  only once Prometheus reads this process's (`prometheus`).
- `summaries()`: count, total, max and fixed log buckets per name (drumbeat.histogram), so
  the demo report prints p50 / p99 / max without a metrics server; a worker process hands
  its own to its parent (`export`, `merge`), exactly.
- While a process records for the store (`drumbeat.recorder`), each duration is also added
  to a histogram per minute, workspace, kind and name, which the recorder writes in bulk
  every few seconds (`take_rows`); kinds: query, stage, campaign, lane and count.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from drumbeat.histogram import Histogram as Summary
from drumbeat.timing_names import CACHE_HITS as CACHE_HITS  # the names, as before
from drumbeat.timing_names import CACHE_MISSES as CACHE_MISSES
from drumbeat.timing_names import GLOBAL
from drumbeat.timing_names import PLAN_STAGE as PLAN_STAGE
from drumbeat.timing_names import TICK_STAGE as TICK_STAGE

STAGE_PREFIXES = ("stage.", "plan.", "engine.")  # the rest are queries
KINDS = ("query", "stage", "campaign", "lane", "count")
RECENT = 60.0  # seconds of timings `recent_quantile` looks at
SLOT = 10.0  # seconds a recent histogram covers

Key = tuple[float, int, str, str]  # minute, workspace, kind, name

_lock = threading.Lock()
_summaries: dict[str, Summary] = {}
_rows: dict[Key, Summary] = {}
_recorders = 0  # rows are kept for the store while at least one recorder runs
_recent: dict[str, dict[int, Summary]] = {}  # name → slot of monotonic time → its timings


def _forked() -> None:
    """A forked child starts with no rows and no recorder (its parent's thread is not in it,
    and the parent writes its own rows): one it starts writes only what the child timed."""
    global _lock, _rows, _recorders
    _lock = threading.Lock()
    _rows = {}
    _recorders = 0


os.register_at_fork(after_in_child=_forked)


MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"  # set where metrics are served
_INSTRUMENTS = frozenset(
    {"REGISTRY", "QUERY_SECONDS", "QUERY_ITEMS", "BATCHES", "BATCH_USERS"}
    | {"TEMPLATE_MISSING", "CACHE_ERRORS", "REDIS_FALLBACKS"}
)
_loaded: ModuleType | None = None


def __getattr__(name: str) -> Any:
    """The instruments (`metrics.CACHE_ERRORS`, …), loaded on first use."""
    if name in _INSTRUMENTS:
        return getattr(instruments(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def instruments() -> ModuleType:
    global _loaded
    if _loaded is None:
        from drumbeat import instruments as loaded

        _loaded = loaded
    return _loaded


def prometheus() -> ModuleType | None:
    """The instruments if Prometheus reads them: this process's metrics are served (by it
    or by the process that started it: `metrics_server` sets MULTIPROCESS_DIRECTORY before
    anything is timed), or they were used already (a counter, the registry); else None,
    and the timings go to the summaries and the store's rows only."""
    if _loaded is None and MULTIPROCESS_DIRECTORY not in os.environ:
        return None
    return instruments()


def kind_of(name: str) -> str:
    return "stage" if name.startswith(STAGE_PREFIXES) else "query"


def record_for_store(on: bool) -> None:
    """A recorder starts (or stops): while any runs, the per-minute rows are kept for
    `take_rows`; after the last stops, none are."""
    global _recorders
    with _lock:
        _recorders = max(0, _recorders + (1 if on else -1))
        if not _recorders:
            _rows.clear()


def _row(ws: int, kind: str, name: str) -> Summary:
    """The current minute's histogram of (ws, kind, name); call with the lock held."""
    key = (time.time() // 60 * 60, ws, kind, name)
    found = _rows.get(key)
    if found is None:
        found = _rows[key] = Summary()
    return found


def observe(name: str, seconds: float, items: int = 0) -> None:
    read = prometheus()
    if read is not None:
        read.QUERY_SECONDS.labels(name).observe(seconds)
        if items:
            read.QUERY_ITEMS.labels(name).inc(items)
    with _lock:
        summary = _summaries.get(name)
        if summary is None:  # (not setdefault: a Summary is 96 buckets, made each time)
            summary = _summaries[name] = Summary()
        summary.add(seconds, items)
        _recent_slot(name).add(seconds, items)
        if _recorders:
            _row(GLOBAL, kind_of(name), name).add(seconds, items)


def _recent_slot(name: str) -> Summary:
    """This SLOT's histogram of `name`, those older than RECENT dropped when a slot starts;
    call with the lock held."""
    slots = _recent.get(name)
    if slots is None:
        slots = _recent[name] = {}
    now = int(time.monotonic() // SLOT)
    found = slots.get(now)
    if found is None:
        for old in [s for s in slots if s < now - RECENT // SLOT]:
            del slots[old]
        found = slots[now] = Summary()
    return found


def recent_quantile(names: Iterable[str], q: float, window: float = RECENT) -> float | None:
    """The `q` quantile of the timings of `names` of the last `window` seconds (a worker
    process's from when its parent merged them); None if there are none."""
    since = int((time.monotonic() - window) // SLOT)
    pooled = Summary()
    with _lock:
        for name in names:
            for slot, summary in _recent.get(name, {}).items():
                if slot >= since:
                    pooled.merge(summary)
    return pooled.quantile(q) if pooled.count else None


def observe_batch(
    ws: int, campaign: str, lane: str, seconds: float, users: int, outcome: str
) -> None:
    """A batch finished (or given up): counted by lane and outcome; its time per campaign and
    per lane (of its workspace) when it was worked through (done or skipped)."""
    read = prometheus()
    if read is not None:
        read.BATCHES.labels(lane, outcome).inc()
        read.BATCH_USERS.labels(lane).inc(users)
    if outcome not in ("done", "skipped"):
        return
    with _lock:
        if _recorders:
            _row(ws, "campaign", campaign).add(seconds, users)
            _row(ws, "lane", lane).add(seconds, users)


def tally(name: str, n: int = 1) -> None:
    """Count `n` of something without a duration (CACHE_HITS, CACHE_MISSES)."""
    read = prometheus()
    if read is not None:
        read.QUERY_ITEMS.labels(name).inc(n)
    with _lock:
        if _recorders:
            _row(GLOBAL, "count", name).tally(n)


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
        return {name: s.copy() for name, s in sorted(_summaries.items())}


def take_rows() -> dict[Key, Summary]:
    """The rows kept since the last call, handed over (the recorder writes them)."""
    global _rows
    with _lock:
        taken, _rows = _rows, {}
    return taken


def give_back(rows: dict[Key, Summary]) -> None:
    """Rows the recorder could not write, kept for its next try."""
    with _lock:
        for key, row in rows.items():
            _rows.setdefault(key, Summary()).merge(row)


def export() -> dict[str, Any]:
    """This process's summaries and rows as plain data, for a worker process to hand to its
    parent (`merge`) once a drain is done; it then `reset`s."""
    with _lock:
        return {
            "names": {name: s.export() for name, s in _summaries.items()},
            "rows": [[*key, row.export()] for key, row in _rows.items()],
        }


def merge(exported: dict[str, Any]) -> None:
    """Add a worker process's summaries and rows (from `export`) to this process's: counts,
    totals, maxima and buckets add up exactly. (Its Prometheus instruments are its own: in
    multiprocess mode the metrics server adds them up.)"""
    with _lock:
        for name, data in exported["names"].items():
            _summaries.setdefault(name, Summary()).merge(Summary.load(data))
            _recent_slot(name).merge(Summary.load(data))
        if _recorders:
            for minute, ws, kind, name, data in exported["rows"]:
                key = (float(minute), int(ws), str(kind), str(name))
                _rows.setdefault(key, Summary()).merge(Summary.load(data))


def reset() -> None:
    with _lock:
        _summaries.clear()
        _rows.clear()
        _recent.clear()
