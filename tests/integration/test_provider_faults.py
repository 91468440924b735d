"""A provider that pushes back, and two `drumbeat advance` processes sending to it at once
on one store: every message is delivered once, each retry waits at least what the provider's
`Retry-After` asked, and the channel's rate limit holds across both processes (counted at
the server, second by second), with the limit counted in the store or in Redis."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from drumbeat.channels.dispatcher import Dispatcher
from drumbeat.client import Drumbeat
from drumbeat.config import Settings
from tests.contract.test_rate_limits import free_port
from tests.integration.test_delivery_faults import (
    T0,
    CountingServer,
    advance,
    db,
    queue,
    statuses,
    store,
)
from tests.integration.test_webhook import ServedInThread

__all__ = ["db", "store"]  # fixtures

RATE = 10  # webhook messages a second
ANSWERS = (429, 503, 200)  # each message's first, second and third call
REDIS_URL = "redis://127.0.0.1:6379/0"


class PushingBack(ServedInThread):
    """Answers each Idempotency-Key 429 (`Retry-After: 1`), then 503, then 200, and notes
    the real time and answer of every call."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with peer.lock:
                    calls = peer.calls[self.headers["Idempotency-Key"]]
                    status = ANSWERS[min(len(calls), len(ANSWERS) - 1)]
                    calls.append((time.time(), status))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


@pytest.fixture(params=["store", "redis", "redis out of reach"])
def limits_in(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """Where the processes count the limit, and the settings that say so. With Redis out of
    reach (nothing listens on its port) they count it in the store."""
    if request.param == "store":
        return request.param, {}
    if request.param == "redis out of reach":
        return request.param, {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        from tests.conftest import need_service

        need_service("Redis", str(exc))
    return request.param, {"redis_url": REDIS_URL}


def finished(process: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err
    return out, err


def test_two_processes_deliver_each_message_once_within_one_rate_limit(
    db, store, database_url, workspace_name, limits_in
):
    where, limits = limits_in
    n = 20
    with PushingBack() as server:
        queue(db, n, "webhook", {"body": "hi", "url": server.url()})
        settings = {
            "webhook_allow": "127.0.0.1",
            "rate_limits": json.dumps({"webhook": RATE}),
            # each process could send 8 a second: only a limit they share keeps both to 10
            "batch_size": 8,
            "retry_after": 0.2,
            "advance_retry_wait": 30,
            **limits,
        }
        started = [
            advance(database_url, workspace_name, "2026-01-05T02:00:00Z", **settings)
            for _ in range(2)
        ]
        outs, errors = zip(*(finished(process) for process in started), strict=True)
    assert statuses(store, workspace_name) == {"sent": n}
    warned = [error.count("Redis is out of reach") for error in errors]
    # out of reach: logged once by each process, which went on counting in the store
    assert warned == ([1, 1] if where == "redis out of reach" else [0, 0]), errors
    called = r"\b[1-9]\d* (sent|pending)\b"  # a 429 or a 503 leaves its message pending
    assert all(re.search(called, out) for out in outs), outs  # both processes made calls
    assert len(server.calls) == n
    assert {key: [status for _, status in calls] for key, calls in server.calls.items()} == {
        key: list(ANSWERS) for key in server.calls
    }  # delivered once: no call after the 200
    waited = [calls[1][0] - calls[0][0] for calls in server.calls.values()]
    assert min(waited) >= 1.0  # Retry-After: 1
    assert_never_ahead_of(RATE, [at for calls in server.calls.values() for at, _ in calls])


def assert_never_ahead_of(rate: int, arrivals: list[float]) -> None:
    """By the end of each second, no more calls have come than `rate` a second allowed since
    the first one (and the second before it, which may have granted calls that came late).
    A call is sent at the start of the second it was granted in, never before: a loaded
    machine may delay it into a later second (so a second's own count can pass the rate),
    never bring it forward. Two processes each sending within a limit of their own would
    soon be ahead."""
    per_second = Counter(math.floor(at) for at in arrivals)
    first = min(per_second)
    came = list(itertools.accumulate(per_second[s] for s in range(first, max(per_second) + 1)))
    allowed = [rate * (elapsed + 2) for elapsed in range(len(came))]
    shown = f"calls a second: {[per_second[s] for s in sorted(per_second)]}"
    assert all(c <= a for c, a in zip(came, allowed, strict=True)), shown


def test_a_dispatch_sends_a_limited_channel_for_one_tick_and_leaves_the_rest_pending(
    db, store, workspace_name
):
    """In-process: 15 messages at 5 a second, a tick of 1 s: each dispatch sends what its
    tick allows, the next one goes on, and no second gets more than 5."""
    n, rate = 15, 5
    config = Settings(
        secret_key="a-secret-key-of-the-tests",
        webhook_allow=["127.0.0.1"],
        rate_limits={"webhook": rate},
        tick_interval=1.0,
    )
    with CountingServer(delay=0.0) as server:
        queue(db, n, "webhook", {"body": "hi", "url": server.url()})
        dispatcher = Dispatcher(store, config)
        try:
            first = dispatcher.dispatch(T0).counts["sent"]
            assert 0 < first < n and statuses(store, workspace_name)["pending"] == n - first
            sent = first
            while sent < n:
                sent += dispatcher.dispatch(T0).counts["sent"]
        finally:
            dispatcher.close()
        arrivals = sorted(server.arrivals)
    assert statuses(store, workspace_name) == {"sent": n} and len(server.keys) == n
    assert_never_ahead_of(rate, arrivals)  # unlimited, all 15 would come in one second


def test_a_claim_across_workspaces_is_granted_at_once(db, store, database_url, workspace_name):
    """Six messages of three workspaces at 6 a second: one claim, one grant, one second."""
    config = Settings(
        secret_key="a-secret-key-of-the-tests",
        webhook_allow=["127.0.0.1"],
        rate_limits={"webhook": 6},
    )
    others = [Drumbeat(database_url, workspace=f"{workspace_name}-{n}") for n in (2, 3)]
    with CountingServer(delay=0.0) as server:
        for client in (db, *others):
            queue(client, 2, "webhook", {"body": "hi", "url": server.url()})
        dispatcher = Dispatcher(store, config)
        try:
            assert dispatcher.dispatch(T0).counts == {"sent": 6}
        finally:
            dispatcher.close()
            for client in others:
                client.close()
    assert len(server.keys) == 6 and len({math.floor(at) for at in server.arrivals}) == 1
