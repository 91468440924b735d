"""The user cache's contract, one suite over both kinds (in-process LRU, Redis): values
carry the user's version, an invalidation wins over a value read before it, a workspace
forgotten whole forgets only it; and Redis out of reach is a miss, said once and counted."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from drumbeat import metrics
from drumbeat.cache import Stamp, UserCache
from drumbeat.cache.memory import MemoryCache
from drumbeat.model.user import User
from tests.conftest import need_service

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_cache(url: str = REDIS_URL) -> UserCache:
    from drumbeat.cache.redis import RedisCache

    return RedisCache(url, ttl=60, prefix=f"drumbeat-test-{uuid.uuid4().hex[:10]}:")


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[UserCache]:
    if request.param == "memory":
        yield MemoryCache(1000)
        return
    made = redis_cache()
    try:
        made.client.ping()  # type: ignore[attr-defined]
    except Exception as exc:
        need_service("Redis", str(exc))
    yield made
    for key in made.client.scan_iter(f"{made.prefix}*"):  # type: ignore[attr-defined]
        made.client.delete(key)  # type: ignore[attr-defined]


def user(user_id: str, version: int, **attributes: object) -> User:
    return User(user_id, f"{user_id}@example.com", attributes=dict(attributes), version=version)


def test_users_set_come_back_with_their_version(cache):
    stamp = cache.get_many(1, ["a", "b"]).stamp
    cache.set_many(1, [user("a", 3, plan="pro"), user("b", 1)], stamp)
    hits = cache.get_many(1, ["a", "b", "c"]).users
    assert hits == {"a": user("a", 3, plan="pro"), "b": user("b", 1)}
    assert cache.get_many(2, ["a"]).users == {}  # another workspace's


def test_an_invalidated_user_is_gone(cache):
    cache.set_many(1, [user("a", 1), user("b", 1)], cache.get_many(1, ["a"]).stamp)
    cache.invalidate_many(1, ["a"])
    assert set(cache.get_many(1, ["a", "b"]).users) == {"b"}


def test_a_value_read_before_an_invalidation_is_not_set_after_it(cache):
    before = cache.get_many(1, ["a"]).stamp  # a reader asks, misses, reads the store: v1
    cache.invalidate_many(1, ["a"])  # a writer commits v2, then invalidates
    cache.set_many(1, [user("a", 1)], before)  # the reader's v1 arrives late
    assert cache.get_many(1, ["a"]).users == {}
    after = cache.get_many(1, ["a"]).stamp  # a read begun after the invalidation
    cache.set_many(1, [user("a", 2)], after)
    assert cache.get_many(1, ["a"]).users == {"a": user("a", 2)}


def test_forgetting_a_workspace_forgets_its_users_only(cache):
    cache.set_many(1, [user("a", 1)], cache.get_many(1, ["a"]).stamp)
    cache.set_many(2, [user("a", 1)], cache.get_many(2, ["a"]).stamp)
    before = cache.get_many(1, ["b"]).stamp
    cache.invalidate_workspace(1)  # a file import committed
    cache.set_many(1, [user("b", 1)], before)
    assert cache.get_many(1, ["a", "b"]).users == {}
    assert set(cache.get_many(2, ["a"]).users) == {"a"}


def test_the_memory_cache_keeps_the_most_recently_used():
    cache = MemoryCache(2)
    cache.set_many(1, [user("a", 1), user("b", 1)], Stamp())
    cache.get_many(1, ["a"])  # a is used: b is the oldest
    cache.set_many(1, [user("c", 1)], Stamp())
    assert set(cache.get_many(1, ["a", "b", "c"]).users) == {"a", "c"}


def test_redis_out_of_reach_is_a_miss_said_once_and_counted(caplog):
    pytest.importorskip("redis")
    cache = redis_cache("redis://127.0.0.1:1/0")  # nothing listens there
    errors = metrics.CACHE_ERRORS._value.get()
    with caplog.at_level(logging.WARNING, logger="drumbeat.cache.redis"):
        for _ in range(3):
            hits = cache.get_many(1, ["a"])
            cache.set_many(1, [user("a", 1)], hits.stamp)
            cache.invalidate_many(1, ["a"])
    assert hits.users == {}
    said = [r for r in caplog.records if "out of reach" in r.getMessage()]
    assert len(said) == 1
    assert metrics.CACHE_ERRORS._value.get() - errors == 6  # gets and invalidations
