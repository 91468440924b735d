"""Per-channel send rate limits (`DRUMBEAT_RATE_LIMITS`) shared by every process sending from
one store, on one machine or many: counted in Redis when `DRUMBEAT_REDIS_URL` is set, in the
store otherwise.

A limit of `rate` messages a second is counted in windows of one real second (epoch
seconds, so every machine's clock must be synchronised, as leases already require): second
`w` allows `floor(rate·(w+1)) − floor(rate·w)` messages, so no second gets more than
`ceil(rate)` and any run of seconds gets `rate` a second on average (2.5/s: 2, 3, 2, 3 …;
0.5/s: one message every other second).

The dispatcher asks for a claim's messages at once (`acquire`: one round trip whatever the
number). They are granted in the next second that allows any, and rendered and sent at its
start (`Grant.at`): the sending may then take up to a second to reach the provider (a
process's first call, a loaded machine) and still land in the second it was counted in. So
a message waits up to a second more on a rate-limited channel.

The counting itself, atomic across processes, is a `Tokens` backend: the store's
`rate_limits` table (`store/rate_limits.py`) or Redis (`redis_limits.py`); `FallbackTokens`
counts in the store while Redis is out of reach.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from drumbeat import metrics

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store import Store

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5.0  # after Redis failed, the store counts for this long before a retry


class Tokens(Protocol):
    """The atomic count of messages granted per (channel, second)."""

    def take(self, channel: str, window: int, wanted: int, limit: int) -> int:
        """Grant up to `wanted` of the `limit` second `window` allows; how many."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int  # messages that may be sent from `at` on (none: ask again at `at`)
    at: float  # the start of the second they count in (real time)


def allowance(rate: float, window: int) -> int:
    """Messages second `window` allows at `rate` a second."""
    return math.floor(rate * (window + 1)) - math.floor(rate * window)


class RateLimiter:
    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    def acquire(self, channel: str, wanted: int, rate: float, now: float) -> Grant:
        """Up to `wanted` messages of `channel` at `rate` a second, in the first second after
        real time `now` that allows any."""
        window = math.floor(now) + 1
        while allowance(rate, window) == 0:  # only below one message a second
            window += 1
        granted = self.tokens.take(channel, window, wanted, allowance(rate, window))
        return Grant(granted, float(window))

    def close(self) -> None:
        self.tokens.close()


class StoreTokens:
    """Counted in the store's `rate_limits` table: shared by whatever uses the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def take(self, channel: str, window: int, wanted: int, limit: int) -> int:
        return self.store.retrying(
            lambda: self.store.take_tokens(channel, window, wanted, limit), "taking send tokens"
        )

    def close(self) -> None:
        """The store is the dispatcher's: not closed here."""


class FallbackTokens:
    """Redis, or the store while Redis is out of reach: the first failure is logged (once an
    outage), every grant counted in the store meanwhile is counted in
    `drumbeat_rate_limit_redis_fallbacks_total`, and Redis is tried again after
    `REDIS_RETRY_SECONDS`. While some processes reach Redis and others do not, each side
    keeps the limit by itself: together they may send up to twice it."""

    def __init__(
        self, primary: Tokens, fallback: Tokens, unavailable: tuple[type[Exception], ...]
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.unavailable = unavailable
        self._down_until: float | None = None  # monotonic time of the next try of Redis

    def take(self, channel: str, window: int, wanted: int, limit: int) -> int:
        tokens = self._current()
        try:
            granted = tokens.take(channel, window, wanted, limit)
        except self.unavailable as exc:
            if self._down_until is None:
                log.warning("Redis is out of reach (%s): rate limits are counted in the store", exc)
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            tokens = self.fallback
            granted = tokens.take(channel, window, wanted, limit)
        if tokens is self.fallback:
            metrics.REDIS_FALLBACKS.inc()
        elif self._down_until is not None:
            log.warning("Redis is back: rate limits are counted in Redis again")
            self._down_until = None
        return granted

    def _current(self) -> Tokens:
        if self._down_until is None or time.monotonic() >= self._down_until:
            return self.primary
        return self.fallback

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()


def open_limiter(config: Settings, store: Store) -> RateLimiter:
    """The limiter the settings ask for: Redis (the store while it is away), or the store."""
    tokens: Tokens = StoreTokens(store)
    if config.redis_url is not None:
        from drumbeat.channels.redis_limits import UNAVAILABLE, RedisTokens

        tokens = FallbackTokens(RedisTokens(config.redis_url), tokens, UNAVAILABLE)
    return RateLimiter(tokens)
