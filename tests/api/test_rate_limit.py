"""The per-key rate limit: a token bucket per credential (on a virtual clock), and over real
HTTP a key past its rate gets 429 with Retry-After while other keys go on."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from drumbeat.api.ratelimit import MAX_BUCKETS, Buckets
from tests.api.conftest import Tenant, new_tenant, serving


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_one_seconds_worth_and_refills_at_the_rate():
    clock = Clock()
    buckets = Buckets(10.0, clock)
    assert [buckets.take(b"a") for _ in range(10)] == [0.0] * 10
    assert buckets.take(b"a") == pytest.approx(0.1)
    assert buckets.take(b"b") == 0.0  # another key has its own bucket
    clock.now += 0.25  # 2.5 requests' worth
    assert [buckets.take(b"a") == 0.0 for _ in range(3)] == [True, True, False]
    clock.now += 60
    assert sum(buckets.take(b"a") == 0.0 for _ in range(20)) == 10  # never more than a second's


def test_a_slow_rate_still_lets_one_request_through_and_says_when_the_next_may_come():
    clock = Clock()
    buckets = Buckets(0.2, clock)
    assert buckets.take(b"a") == 0.0
    assert buckets.take(b"a") == pytest.approx(5.0)
    clock.now += 4
    assert buckets.take(b"a") == pytest.approx(1.0)
    clock.now += 1
    assert buckets.take(b"a") == 0.0


def test_full_buckets_are_forgotten_past_the_cap():
    clock = Clock()
    buckets = Buckets(1.0, clock)
    for n in range(MAX_BUCKETS):
        buckets.take(n.to_bytes(4, "big"))
    clock.now += 2  # all refilled
    buckets.take(b"busy")
    buckets.take(b"new")
    assert buckets.take(b"busy") > 0  # an emptied bucket is kept
    assert len(buckets._held) <= 2


@pytest.fixture(scope="module")
def limited(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve-limited") / "serve.log"
    with serving(database_url, log, DRUMBEAT_API_RATE_LIMIT="0.5") as url:
        yield url


def test_a_key_past_its_rate_gets_429_with_retry_after(limited: str, tenant: Tenant, store):
    def track(auth: tuple[str, str], n: int) -> httpx.Response:
        call = {"userId": "u", "event": "E", "messageId": f"m{n}"}
        return httpx.post(f"{limited}/v1/track", json=call, auth=auth, timeout=10)

    assert track(tenant.auth(), 1).status_code == 200
    refused = track(tenant.auth(), 2)  # within 2 s of the first: the bucket is empty
    assert refused.status_code == 429
    assert refused.headers["retry-after"] in ("1", "2")
    assert "0.5 requests/s" in refused.json()["detail"]
    assert tenant.store.count_events(tenant.ws) == 1  # the refused call stored nothing

    other = new_tenant(store)
    assert track(other.auth(), 3).status_code == 200  # another key has its own rate
    assert httpx.get(f"{limited}/healthz", timeout=10).status_code == 200  # no key: no limit
