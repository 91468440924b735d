"""The rate limiter contract: one suite, run with its count in the store (SQLite and
PostgreSQL) and in Redis. Real time is given by the tests (a limiter never reads a clock)."""

from __future__ import annotations

import logging
import math
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from drumbeat import metrics
from drumbeat.channels.rate_limits import (
    FallbackTokens,
    Grant,
    RateLimiter,
    StoreTokens,
    allowance,
)
from drumbeat.store import open_store

REDIS_URL = "redis://127.0.0.1:6379/0"
T = 1_800_000_000.0  # a real time, at the start of a second


def redis_tokens(url: str = REDIS_URL):  # type: ignore[no-untyped-def]
    from drumbeat.channels.redis_limits import RedisTokens

    return RedisTokens(url, prefix=f"drumbeat-test:{uuid.uuid4().hex[:12]}:")


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def limiter(request: pytest.FixtureRequest, tmp_path) -> Iterator[RateLimiter]:  # type: ignore[no-untyped-def]
    if request.param == "redis":
        tokens = redis_tokens()
        try:
            tokens.client.ping()
        except Exception as exc:
            from tests.conftest import need_service

            need_service("Redis", str(exc))
        limiter = RateLimiter(tokens)
        yield limiter
        limiter.close()
        return
    url = f"sqlite:///{tmp_path / 'd.db'}"
    if request.param == "postgresql":
        url = str(request.getfixturevalue("pg_database"))
    store = open_store(url)
    limiter = RateLimiter(StoreTokens(store))
    yield limiter
    limiter.close()
    store.close()


@pytest.fixture
def channel() -> str:
    """A channel of the test's own: the PostgreSQL database and Redis are shared."""
    return f"ch-{uuid.uuid4().hex[:12]}"


def test_a_second_grants_no_more_than_its_rate_whoever_asks(limiter, channel):
    grants = [limiter.acquire(channel, 4, 10, T + at) for at in (0.0, 0.1, 0.5, 0.9)]
    assert [g.granted for g in grants] == [4, 4, 2, 0]
    assert {g.at for g in grants} == {T + 1}  # sent at the start of the next second


def test_the_next_second_grants_anew(limiter, channel):
    assert limiter.acquire(channel, 50, 10, T + 0.2) == Grant(10, T + 1)
    assert limiter.acquire(channel, 50, 10, T + 1.0) == Grant(10, T + 2)
    assert limiter.acquire(channel, 50, 10, T + 1.7) == Grant(0, T + 2)  # ask again then
    assert limiter.acquire(channel, 3, 10, T + 5.5) == Grant(3, T + 6)


def test_a_fractional_rate_is_kept_on_average_and_never_rounded_up_in_a_second(limiter, channel):
    granted = [limiter.acquire(channel, 100, 2.5, T + s).granted for s in range(8)]
    assert sum(granted) == 20 and max(granted) == 3 and min(granted) == 2


def test_below_one_a_second_a_grant_waits_for_the_next_second_with_room(limiter, channel):
    # one message every 4 seconds: T + 3 has the next one, then T + 7
    assert limiter.acquire(channel, 5, 0.25, T) == Grant(1, T + 3)
    assert limiter.acquire(channel, 5, 0.25, T + 0.5) == Grant(0, T + 3)
    assert limiter.acquire(channel, 5, 0.25, T + 3) == Grant(1, T + 7)


def test_channels_are_counted_apart(limiter, channel):
    assert limiter.acquire(channel, 10, 5, T).granted == 5
    assert limiter.acquire(f"{channel}-other", 10, 5, T).granted == 5


def test_concurrent_claims_share_one_second_without_exceeding_it(limiter, channel):
    """Eight threads, each asking for 3 at a time, 20 times, in one second of rate 100."""
    granted: list[int] = []
    lock = threading.Lock()

    def claims() -> None:
        for _ in range(20):
            got = limiter.acquire(channel, 3, 100, T + 0.5).granted
            with lock:
                granted.append(got)

    threads = [threading.Thread(target=claims) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100 and max(granted) == 3


def test_allowance_spreads_a_rate_over_seconds():
    for rate in (0.3, 1.0, 2.5, 7.7, 50.0):
        seconds = [allowance(rate, int(T) + s) for s in range(100)]
        assert max(seconds) <= math.ceil(rate)
        assert abs(sum(seconds) - rate * 100) <= 1


def free_port() -> int:
    with socket.socket() as probe:  # nothing listens on it once closed
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_with_redis_out_of_reach_the_store_counts_logs_once_and_counts_it(
    tmp_path, channel, caplog
):
    from drumbeat.channels.redis_limits import UNAVAILABLE

    store = open_store(f"sqlite:///{tmp_path / 'd.db'}")
    away = redis_tokens(f"redis://127.0.0.1:{free_port()}/0")
    limiter = RateLimiter(FallbackTokens(away, StoreTokens(store), UNAVAILABLE))
    before = metrics.REDIS_FALLBACKS._value.get()
    try:
        with caplog.at_level(logging.WARNING, "drumbeat.channels.rate_limits"):
            grants = [limiter.acquire(channel, 4, 10, T + at) for at in (0.0, 0.1, 0.2)]
        assert [g.granted for g in grants] == [4, 4, 2]
        assert store.take_tokens(channel, int(T) + 1, 10, 10) == 0  # the store counted them
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "Redis is out of reach" in warnings[0], warnings
        assert metrics.REDIS_FALLBACKS._value.get() - before == 3
    finally:
        limiter.close()
        store.close()


def redis_server(port: int) -> subprocess.Popen[bytes]:
    """A Redis of the test's own on `port`, answering once this returns."""
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = subprocess.Popen([*args, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)


def test_redis_stopping_and_coming_back_moves_the_count_to_the_store_and_back(
    tmp_path, channel, caplog, monkeypatch
):
    if shutil.which("redis-server") is None:
        from tests.conftest import need_service

        need_service("redis-server", "no redis-server command to start one of the test's own")
    from drumbeat.channels import rate_limits
    from drumbeat.channels.redis_limits import UNAVAILABLE

    monkeypatch.setattr(rate_limits, "REDIS_RETRY_SECONDS", 0.0)  # try Redis at each grant
    port = free_port()
    store = open_store(f"sqlite:///{tmp_path / 'd.db'}")
    redis = redis_tokens(f"redis://127.0.0.1:{port}/0")
    limiter = RateLimiter(FallbackTokens(redis, StoreTokens(store), UNAVAILABLE))
    server = redis_server(port)
    try:
        with caplog.at_level(logging.WARNING, "drumbeat.channels.rate_limits"):
            assert limiter.acquire(channel, 3, 10, T).granted == 3  # in Redis
            server.terminate()
            server.wait()
            assert limiter.acquire(channel, 3, 10, T + 0.1).granted == 3  # in the store
            assert limiter.acquire(channel, 3, 10, T + 0.2).granted == 3  # still
            server = redis_server(port)  # empty: the second's count started again
            assert limiter.acquire(channel, 20, 10, T + 0.3).granted == 10  # in Redis
        assert store.take_tokens(channel, int(T) + 1, 10, 10) == 4  # the store had 6
        messages = [r.getMessage() for r in caplog.records]
        assert [m.split(" (")[0].split(":")[0] for m in messages] == [
            "Redis is out of reach",
            "Redis is back",
        ], messages
    finally:
        server.terminate()
        server.wait()
        limiter.close()
        store.close()
