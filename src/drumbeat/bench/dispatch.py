"""`drumbeat bench dispatch`: a dispatcher's claim of 1,000 outbox rows (a tenth of the
smallest outbox if fewer) with few and with many messages pending (the sizes given), on
SQLite (and PostgreSQL if given). A claim must cost the same whatever is pending: its
queries read partial indexes in their own order (`store/outbox_claims.py`).

The outbox is filled through `insert_messages` (the workers' bulk insert), one row in ten on
a channel of its own ("sms", as a rate-limited channel claims per channel). Each claim is
timed, then its rows are put back to `pending` untimed, so every repeat meets the same
outbox. Floor: a plain indexed SELECT of the same due rows, in the same run. The fill's
rate is reported too (10M rows take minutes).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import delete, text, update

from drumbeat.bench.report import Figure
from drumbeat.demo.data import DEMO_NOW
from drumbeat.engine.member import OutMessage
from drumbeat.store import Store, open_store
from drumbeat.store.schema import outbox

CLAIM = 1000
REPEATS = 7
FILL_CHUNK = 50_000  # rows a transaction while filling
LEASE = 3600.0
REAL_NOW = 1_000_000.0  # the claims' real clock: no lease taken here runs out
PAYLOAD = {"subject": "Hi", "body": "Hello {{ user.email }}"}
FLOOR = (
    "SELECT id FROM outbox WHERE status = 'pending' AND retry_at IS NULL "
    "AND available_at <= :now {channel}ORDER BY available_at, id LIMIT :limit"
)


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def messages(prefix: str, start: int, stop: int) -> Iterator[OutMessage]:
    """Rows `start` … `stop - 1`, due in that order over the day before DEMO_NOW."""
    for n in range(start, stop):
        channel = "sms" if n % 10 == 9 else "email"
        at = DEMO_NOW - 86_400 + n * 1e-3
        yield OutMessage(f"{prefix}/{n}", "hello", f"u{n}", 1, channel, PAYLOAD, at)


def fill(store: Store, ws: int, prefix: str, start: int, stop: int) -> None:
    for first in range(start, stop, FILL_CHUNK):
        with store.writing() as conn:
            batch = list(messages(prefix, first, min(stop, first + FILL_CHUNK)))
            store.insert_messages(conn, ws, "bench", batch)
    if store.dialect == "postgresql":
        with store.writing() as conn:
            conn.exec_driver_sql("ANALYZE outbox")
    else:  # the fill's WAL copied into the database now, not by the first claim's commit
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def claim_seconds(store: Store, claim: int, channel: str | None) -> float:
    """The median claim of `claim` rows, each claim's rows put back to pending afterwards."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        rows = store.claim_messages(DEMO_NOW, REAL_NOW, claim, LEASE, channel)
        times.append(time.perf_counter() - start)
        with store.writing() as conn:
            back = update(outbox).where(outbox.c.id.in_([row.id for row in rows]))
            conn.execute(back.values(status="pending", lease_until=None))
    return statistics.median(times)


def floor_seconds(store: Store, claim: int, channel: str | None) -> float:
    query = text(FLOOR.format(channel="AND channel = :channel " if channel else ""))
    params = {"now": DEMO_NOW, "limit": claim, "channel": channel}
    with store.engine.connect() as conn:
        return statistics.median(
            timed(lambda: conn.execute(query, params).fetchall()) for _ in range(REPEATS)
        )


def run(url: str, sizes: Sequence[int]) -> list[Figure]:
    """One backend: the claims (any channel, then one channel's) at each size, smallest
    first, each larger outbox filled on top of the one before; every size's claim against
    the smallest's."""
    sizes = sorted(sizes)
    claim = min(CLAIM, sizes[0] // 10)  # the channel's share of the smallest has as many
    store = open_store(url, batch_size=claim)
    backend = store.dialect
    name = f"bench-{uuid.uuid4().hex[:8]}"
    ws = store.workspace_id(name, now=DEMO_NOW)
    measured: dict[tuple[str | None, int], tuple[float, float]] = {}
    figures = []
    try:
        filled = 0
        for size in sizes:
            started = time.perf_counter()
            fill(store, ws, name, filled, size)
            seconds = time.perf_counter() - started
            figures.append(
                Figure(
                    f"{backend}: fill {filled:,} → {size:,} pending (insert_messages, "
                    f"{FILL_CHUNK:,} rows a transaction)",
                    (size - filled) / seconds,
                    "rows/s",
                )
            )
            filled = size
            for channel in (None, "sms"):
                measured[channel, size] = (
                    claim_seconds(store, claim, channel),
                    floor_seconds(store, claim, channel),
                )
    finally:
        remove_messages(store, ws)
        store.close()
    smallest = sizes[0]
    for channel, what in ((None, "any channel"), ("sms", "one channel's (1 in 10)")):
        for size in sizes:
            seconds, floor = measured[channel, size]
            figures.append(
                Figure(
                    f"{backend}: claim {claim:,} rows, {what}, of {size:,} pending",
                    seconds * 1000,
                    "ms",
                    floor * 1000,
                )
            )
        small_claim, small_floor = measured[channel, smallest]
        for size in sizes[1:]:
            large_claim, large_floor = measured[channel, size]
            figures.append(
                Figure(
                    f"{backend}: {what}: claim at {size:,} / at {smallest:,} pending",
                    large_claim / small_claim,
                    "×",
                    large_floor / small_floor,
                    "≈ 1× (the claim costs the same)",
                )
            )
    return figures


def remove_messages(store: Store, ws: int) -> None:
    """Delete the run's rows, so that the next run on the same database meets the same table."""
    with store.writing() as conn:
        conn.execute(delete(outbox).where(outbox.c.workspace_id == ws))
    if store.dialect == "postgresql":  # VACUUM runs outside a transaction
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE outbox")
