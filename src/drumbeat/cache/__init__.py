"""The user cache: users as the engine reads them, kept beside the store (DRUMBEAT_CACHE).

`UserCache` has two kinds. `memory`: an LRU in this process, checked against the store's
version of each user on every read (one narrow query: `SELECT user_id, version`), so a
write by any process is never missed. `redis`: shared by every process, trusted without a
store read; every write of users invalidates it after its commit (`Store.write_users`,
`write_calls`, a file import), and a value read from the store before an invalidation is
refused when it comes to be set (`Stamp`). Redis out of reach: users come from the store,
a warning is logged once per outage and `drumbeat_cache_errors_total` counts each miss.

`read_through` is how the store's `load_users` (the batch path) uses either."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from drumbeat import metrics
from drumbeat.model.user import User

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store import Store


@dataclass(frozen=True)
class Stamp:
    """When a read asked the cache, in the cache's own terms (its workspace generation and
    invalidation count): values loaded from the store after that read are set with it, and
    refused for a user invalidated since."""

    generation: int = 0
    sequence: int = 0


@dataclass
class Hits:
    users: dict[str, User] = field(default_factory=dict)
    stamp: Stamp = field(default_factory=Stamp)


class UserCache(Protocol):
    validates: bool  # True: hits are checked against the store's versions before use

    def get_many(self, ws: int, user_ids: Sequence[str]) -> Hits: ...

    def set_many(self, ws: int, users: Iterable[User], stamp: Stamp) -> None: ...

    def invalidate_many(self, ws: int, user_ids: Sequence[str]) -> None:
        """Forget the users (after the commit that changed them): a value read from the
        store before this call is not set any more."""

    def invalidate_workspace(self, ws: int) -> None:
        """Forget every user of the workspace (after a file import's commit)."""


def user_cache(config: Settings) -> UserCache | None:
    """The cache the settings name (DRUMBEAT_CACHE), or None."""
    if config.cache == "memory":
        from drumbeat.cache.memory import MemoryCache

        return MemoryCache(config.cache_size)
    if config.cache == "redis":
        from drumbeat.cache.redis import RedisCache

        assert config.redis_url is not None  # the settings refuse redis without a URL
        return RedisCache(config.redis_url, ttl=config.cache_ttl)
    return None


def read_through(
    store: Store, cache: UserCache, ws: int, user_ids: Sequence[str]
) -> dict[str, User]:
    """The users among `user_ids`: hits from the cache (checked against the store's versions
    when the cache `validates`), the rest from the store, then set in the cache."""
    hits = cache.get_many(ws, user_ids)
    users = hits.users
    if users and cache.validates:
        current = store.user_versions(ws, list(users))
        users = {u: user for u, user in users.items() if current.get(u) == user.version}
    missing = [u for u in user_ids if u not in users]
    metrics.tally(metrics.CACHE_HITS, len(user_ids) - len(missing))
    metrics.tally(metrics.CACHE_MISSES, len(missing))
    if missing:
        loaded = store.load_users_from_store(ws, missing)
        cache.set_many(ws, loaded.values(), hits.stamp)
        users.update(loaded)
    return users


def user_row(user: User) -> list[Any]:
    """A user as a JSON-able row (orjson), and back with `from_row`."""
    return [
        user.user_id,
        user.email,
        user.timezone,
        user.unsubscribed,
        user.created_at,
        user.last_seen_at,
        user.attributes,
        user.updated_at,
        user.version,
    ]


def from_row(row: list[Any]) -> User:
    return User(*row)
