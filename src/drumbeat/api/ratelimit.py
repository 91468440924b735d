"""The per-key rate limit (`DRUMBEAT_API_RATE_LIMIT`, requests per second): a token bucket per
credential, in the serving process.

A request's credential is its `Authorization` header, whatever it holds (a write or admin key,
an inbox token, or something unknown: a flood of bad keys is limited too); requests without
one (unsubscribe links, health checks) are not limited here. A bucket holds one second's
worth of requests (at least one) and refills at the rate; a request that finds it empty gets
429 with `Retry-After`, the whole seconds until it would not. The buckets live in each
process: with `drumbeat serve --workers N` a key may make up to N times the rate.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from drumbeat.config import Settings

MAX_BUCKETS = 10_000  # past this, the buckets that have refilled whole are forgotten


class Buckets:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.clock = clock
        self._held: dict[bytes, tuple[float, float]] = {}  # credential → (tokens, at)

    def take(self, credential: bytes) -> float:
        """0 if `credential` may make a request now (and it is counted), else the seconds
        until it may."""
        now = self.clock()
        tokens, at = self._held.get(credential, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._held[credential] = (tokens - 1.0, now)
            if len(self._held) > MAX_BUCKETS:
                self._forget_full(now)
            return 0.0
        self._held[credential] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """A bucket that has refilled is the same as none: drop those."""
        self._held = {
            credential: (tokens, at)
            for credential, (tokens, at) in self._held.items()
            if tokens + (now - at) * self.rate < self.capacity
        }


class RateLimit:
    """ASGI middleware: 429 for a credential past its rate, before any other work."""

    def __init__(self, app: ASGIApp, buckets: Buckets) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            credential = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if credential:
                wait = self.buckets.take(hashlib.sha256(credential).digest())
                if wait > 0:
                    rate = f"{self.buckets.rate:g}"
                    response = JSONResponse(
                        {"detail": f"rate limit of {rate} requests/s for this key exceeded"},
                        status_code=429,
                        headers={"Retry-After": str(max(1, math.ceil(wait)))},
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def install(app: FastAPI, config: Settings) -> None:
    if config.api_rate_limit is not None:
        app.add_middleware(RateLimit, buckets=Buckets(config.api_rate_limit))
