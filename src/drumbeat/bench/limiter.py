"""`drumbeat bench limiter`: what a shared rate limit adds to a claim of outbox rows. A
rate-limited channel's claim first takes its messages from the limiter (one round trip:
`channels/rate_limits.py`), counted in the store or in Redis. Each grant is timed next to
the claim it precedes, alternating in the same run: the figure is its share of the claim.

The outbox is filled as `bench dispatch` fills it (one row in ten on "sms", the channel
claimed); each claim's rows are put back to pending untimed, so every claim meets the same
outbox. The limit is high enough that every grant is whole; the count is the run's own
channel, removed at the end."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

from sqlalchemy import delete, update

from drumbeat.bench.dispatch import LEASE, REAL_NOW, fill, remove_messages
from drumbeat.bench.report import Figure
from drumbeat.channels.rate_limits import RateLimiter, StoreTokens, Tokens
from drumbeat.demo.data import DEMO_NOW
from drumbeat.store import Store, open_store
from drumbeat.store.schema import outbox, rate_limits

REPEATS = 15
CHANNEL = "sms"
RATE = 1e9  # messages a second: every grant whole


def claim(store: Store, size: int) -> float:
    """Seconds of one claim of `size` rows; its rows put back to pending afterwards, untimed."""
    start = time.perf_counter()
    rows = store.claim_messages(DEMO_NOW, REAL_NOW, size, LEASE, CHANNEL)
    seconds = time.perf_counter() - start
    with store.writing() as conn:
        back = update(outbox).where(outbox.c.id.in_([row.id for row in rows]))
        conn.execute(back.values(status="pending", lease_until=None))
    return seconds


def grant(limiter: RateLimiter, counted_as: str, size: int) -> float:
    """Seconds of one grant of `size` messages."""
    start = time.perf_counter()
    limiter.acquire(counted_as, size, RATE, time.time())
    return time.perf_counter() - start


def run(url: str, pending: int, redis_url: str | None) -> list[Figure]:
    """One store: its claim with a limiter counting in the store (and in Redis if given)."""
    size = min(1000, pending // 10)
    store = open_store(url, batch_size=size)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    ws = store.workspace_id(name, now=DEMO_NOW)
    backends: dict[str, Callable[[], Tokens]] = {"the store": lambda: StoreTokens(store)}
    if redis_url is not None:
        from drumbeat.channels.redis_limits import RedisTokens

        backends["Redis"] = lambda: RedisTokens(redis_url, prefix=f"drumbeat-bench:{name}:")
    figures = []
    try:
        fill(store, ws, name, 0, pending)
        for where, tokens in backends.items():
            limiter = RateLimiter(tokens())
            claims, grants = [], []
            for _ in range(REPEATS):  # alternating: the machine's load weighs on both alike
                claims.append(claim(store, size))
                grants.append(grant(limiter, name, size))
            limiter.close()
            figures.append(
                Figure(
                    f"{store.dialect}: a grant of {size:,} messages counted in {where}, "
                    f"against the claim of {size:,} rows it precedes ({pending:,} pending)",
                    statistics.median(grants) * 1000,
                    "ms",
                    statistics.median(claims) * 1000,
                    "≤ 0.1× (a tenth of the claim)",
                )
            )
    finally:
        remove_messages(store, ws)
        with store.writing() as conn:  # the run's count in the store
            conn.execute(delete(rate_limits).where(rate_limits.c.channel == name))
        store.close()
    return figures
