"""The Redis user cache (DRUMBEAT_CACHE=redis, DRUMBEAT_REDIS_URL; the `redis` extra),
shared by every process. One round trip a call: a read is one pipeline (the workspace's
generation and invalidation count, then MGET); a set and an invalidation are one script.

Keys, under `prefix`: `u:{ws}:{user}` holds `[generation, user row…]` (orjson) for `ttl`
seconds, or after an invalidation `["x", sequence]`; `seq:{ws}` counts invalidations,
`gen:{ws}` the workspace's generation (a file import, or an invalidation this process could
not deliver, moves it on: every value of an older generation is then ignored)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson

from drumbeat import metrics
from drumbeat.cache import Hits, Stamp, from_row, user_row
from drumbeat.errors import require
from drumbeat.model.user import User

log = logging.getLogger(__name__)
T = TypeVar("T")

# KEYS: the users' keys. ARGV: generation, sequence, ttl in ms, then one value per key.
# Left alone: a key invalidated after the read that loaded its value (a higher sequence),
# and a key holding the same user at a version as new or newer (set by a later read).
_SET = """
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  local keep = false
  if current then
    local held = cjson.decode(current)
    if held[1] == 'x' then
      keep = tonumber(held[2]) > tonumber(ARGV[2])
    elseif held[1] == tonumber(ARGV[1]) then
      local given = cjson.decode(ARGV[i + 3])
      keep = held[#held] >= given[#given]
    end
  end
  if not keep then redis.call('SET', key, ARGV[i + 3], 'PX', ARGV[3]) end
end
"""

# KEYS[1]: the workspace's sequence, then the users' keys. ARGV[1]: ttl in ms.
_INVALIDATE = """
local sequence = redis.call('INCR', KEYS[1])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], '["x",' .. sequence .. ']', 'PX', ARGV[1])
end
return sequence
"""


class RedisCache:
    validates = False

    def __init__(self, url: str, *, ttl: float, prefix: str = "drumbeat:") -> None:
        redis = require("redis", feature="the Redis user cache", extra="redis")
        self.client: Any = redis.Redis.from_url(  # type: ignore[attr-defined]
            url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self.errors: tuple[type[Exception], ...] = (redis.RedisError,)  # type: ignore[attr-defined]
        self.prefix, self.ttl_ms = prefix, int(ttl * 1000)
        self._set = self.client.register_script(_SET)
        self._invalidate = self.client.register_script(_INVALIDATE)
        self._down = False  # an outage under way, logged once
        self._missed: set[int] = set()  # workspaces whose invalidations did not get through

    def _key(self, ws: int, user_id: str) -> str:
        return f"{self.prefix}u:{ws}:{user_id}"

    def get_many(self, ws: int, user_ids: Sequence[str]) -> Hits:
        def read() -> Hits:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(f"{self.prefix}gen:{ws}")
            pipe.get(f"{self.prefix}seq:{ws}")
            pipe.mget([self._key(ws, u) for u in user_ids])
            generation, sequence, values = pipe.execute()
            hits = Hits(stamp=Stamp(int(generation or 0), int(sequence or 0)))
            for value in values:
                row = orjson.loads(value) if value is not None else None
                if row and row[0] == hits.stamp.generation:
                    user = from_row(row[1:])
                    hits.users[user.user_id] = user
            return hits

        return self._guarded(read, Hits(stamp=Stamp(-1, -1)), ws) if user_ids else Hits()

    def set_many(self, ws: int, users: Iterable[User], stamp: Stamp) -> None:
        rows = [(self._key(ws, u.user_id), [stamp.generation, *user_row(u)]) for u in users]
        if not rows or stamp.generation < 0:  # read while Redis was out of reach
            return
        values = [orjson.dumps(row).decode() for _, row in rows]
        args = [stamp.generation, stamp.sequence, self.ttl_ms, *values]
        self._guarded(lambda: self._set(keys=[k for k, _ in rows], args=args), None, ws)

    def invalidate_many(self, ws: int, user_ids: Sequence[str]) -> None:
        if not user_ids:
            return
        keys = [f"{self.prefix}seq:{ws}", *(self._key(ws, u) for u in user_ids)]
        if self._guarded(lambda: self._invalidate(keys=keys, args=[self.ttl_ms]), None, ws) is None:
            self._missed.add(ws)

    def invalidate_workspace(self, ws: int) -> None:
        if self._guarded(lambda: self.client.incr(f"{self.prefix}gen:{ws}"), None, ws) is None:
            self._missed.add(ws)

    def _guarded(self, work: Callable[[], T], fallback: T, ws: int) -> T:
        """`work()`, or `fallback` if Redis is out of reach (logged once an outage, counted
        each time). Back in reach, a workspace whose invalidations were lost meanwhile moves
        to a new generation first, so that no value from before them is read."""
        try:
            for missed in sorted(self._missed):
                self.client.incr(f"{self.prefix}gen:{missed}")
                self._missed.discard(missed)
            result = work()
        except self.errors as exc:
            metrics.CACHE_ERRORS.inc()
            if not self._down:
                log.warning("the Redis user cache is out of reach (%s): reading the store", exc)
                self._down = True
            return fallback
        if self._down:
            log.warning("the Redis user cache is back")
            self._down = False
        return result
