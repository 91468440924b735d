"""The timings table, on SQLite and PostgreSQL: writes from any number of processes add up
exactly (counts, totals, buckets; the largest maximum kept), a span is read summed per name,
old minutes are dropped, and a process's recorder writes what it timed in the background
and at its close."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from drumbeat import metrics
from drumbeat.histogram import Histogram
from drumbeat.recorder import Recorder
from drumbeat.store import Store, open_store

MINUTE = 1_800_000_000.0  # a whole minute, long past: other tests' rows are not in it


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = open_store(database_url)
    yield store
    store.close()


@pytest.fixture
def ws() -> int:
    """A workspace number of the test's own (timings carry no key to workspaces)."""
    return random.randrange(10**6, 10**9)


def made_of(*seconds: float) -> Histogram:
    histogram = Histogram()
    for s in seconds:
        histogram.add(s, items=10)
    return histogram


def test_writes_of_the_same_minute_and_name_add_up_exactly(store: Store, ws: int) -> None:
    first, second = made_of(0.001, 0.002, 0.004), made_of(0.5, 0.003)
    store.add_timings({(MINUTE, ws, "query", "q"): first})
    store.add_timings({(MINUTE, ws, "query", "q"): second, (MINUTE + 60, ws, "query", "q"): first})
    totals = store.timing_totals((ws,), "query", MINUTE)
    whole = made_of(0.001, 0.002, 0.004, 0.5, 0.003, 0.001, 0.002, 0.004)
    [(name, found)] = totals.by_name.items()
    assert name == "q"
    assert found.buckets == whole.buckets
    assert (found.count, found.items, found.maximum) == (8, 80, 0.5)
    assert found.total == pytest.approx(whole.total)
    assert found.quantile(0.5) == whole.quantile(0.5) and found.quantile(0.99) == 0.5
    assert totals.active_minutes == 2


def test_a_span_its_kind_and_its_workspaces_are_read_alone(store: Store, ws: int) -> None:
    store.add_timings(
        {
            (MINUTE, ws, "query", "old"): made_of(0.01),
            (MINUTE + 3600, ws, "query", "new"): made_of(0.02),
            (MINUTE + 3600, ws, "stage", "stage.x"): made_of(0.03),
            (MINUTE + 3600, ws + 1, "query", "elsewhere"): made_of(0.04),
        }
    )
    assert list(store.timing_totals((ws,), "query", MINUTE + 3600).by_name) == ["new"]
    assert list(store.timing_totals((ws,), "query", MINUTE).by_name) == ["new", "old"]
    assert list(store.timing_totals((ws,), "stage", MINUTE).by_name) == ["stage.x"]
    both = store.timing_totals((ws, ws + 1), "query", MINUTE + 3600).by_name
    assert sorted(both) == ["elsewhere", "new"]


def test_processes_writing_at_once_lose_nothing(store: Store, database_url: str, ws: int) -> None:
    """Four stores (each its own connections, as processes have) add into the same rows at
    once, in different orders: every count is there."""
    stores = [store, *(open_store(database_url, migrate=False) for _ in range(3))]
    names = [f"q{n}" for n in range(5)]
    rounds = 10

    def write(writer: Store, seed: int) -> None:
        order = random.Random(seed)
        for _ in range(rounds):
            shuffled = order.sample(names, len(names))
            writer.add_timings({(MINUTE, ws, "query", name): made_of(0.001) for name in shuffled})

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals = store.timing_totals((ws,), "query", MINUTE).by_name
    for other in stores[1:]:
        other.close()
    assert {name: h.count for name, h in totals.items()} == dict.fromkeys(names, 4 * rounds)


def test_old_minutes_are_dropped(store: Store, ws: int) -> None:
    store.add_timings({(60.0, ws, "query", "ancient"): made_of(0.01)})
    store.add_timings({(MINUTE, ws, "query", "kept"): made_of(0.01)})
    assert store.prune_timings(120.0) >= 1
    assert list(store.timing_totals((ws,), "query", 0.0).by_name) == ["kept"]


def test_the_recorder_writes_what_was_timed_and_the_rest_at_close(store: Store) -> None:
    name = f"test.{uuid.uuid4().hex[:8]}"
    since = time.time() // 60 * 60
    metrics.reset()
    recorder = Recorder(store, every=0.05, keep=86400.0)
    try:
        metrics.observe(name, 0.002, items=5)
        deadline = time.monotonic() + 10
        while name not in store.timing_totals((metrics.GLOBAL,), "query", since).by_name:
            assert time.monotonic() < deadline, "the recorder never wrote"
            time.sleep(0.02)
        metrics.observe(name, 0.004, items=5)
        metrics.observe_batch(7, "camp", "fast", 0.25, 100, "done")
        metrics.observe_batch(7, "camp", "fast", 9.0, 100, "failed")  # counted, not timed
    finally:
        recorder.close()
    found = store.timing_totals((metrics.GLOBAL,), "query", since - 60).by_name[name]
    assert (found.count, found.items, found.maximum) == (2, 10, 0.004)
    campaign = store.timing_totals((7,), "campaign", since - 60).by_name["camp"]
    assert (campaign.count, campaign.items, campaign.maximum) == (1, 100, 0.25)
    metrics.observe(name, 0.1)  # closed: nothing kept for the store
    assert metrics.take_rows() == {}


def test_lane_depths_count_the_workspaces_waiting_and_running_batches(
    store: Store, workspace_name: str
) -> None:
    ws = store.workspace_id(workspace_name)
    with store.writing() as conn:
        store.create_batches(conn, ws, "c", "slow", "enter", [["u1"], ["u2"]], 100.0, 100.0)
        store.create_batches(conn, ws, "c", "slow", "enter", [["u3"]], 200.0, 200.0)
    assert store.lane_depths(ws) == {"slow": (3, 0, 100.0)}
    batch = store.claim_batch("slow", 60.0)
    assert batch is not None and batch.workspace_id == ws
    assert batch.user_ids == ["u1"]  # the oldest first; u2 still waits from 100.0
    assert store.lane_depths(ws) == {"slow": (2, 1, 100.0)}


def test_the_cache_hit_rate_is_read_from_what_a_cache_counted(store: Store) -> None:
    """n/a (None) until a cache counts hits or misses; then hits over both."""
    from drumbeat.choices import StatsBy
    from drumbeat.stats import read_stats

    ws = random.randrange(10**6, 10**9)  # lane depths of no workspace: none
    now = time.time()
    with_cache = {metrics.CACHE_HITS: 3, metrics.CACHE_MISSES: 1}

    def rate() -> float | None:
        found = read_stats(store, ws, since=60.0, by=StatsBy.QUERY, now=now + 60, clock=now)
        return found.cache_hit_rate

    before = rate()
    recorder = Recorder(store, every=3600.0, keep=86400.0)
    for name, n in with_cache.items():
        metrics.tally(name, n)
    recorder.close()
    after = rate()
    if before is None:  # no other test counted hits in this minute on the shared database
        assert after == 0.75
    assert after is not None and 0 < after < 1
