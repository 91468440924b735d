"""Send rate limits counted in Redis (`rate_limits.py` says what is counted): one key a
channel and second, `drumbeat:rate:<channel>:<second>`, expiring soon after its second.
A grant is one Lua script: one round trip, atomic, whatever the number of messages. Needs
the `redis` extra (`pip install 'drumbeat[redis]'`)."""

from __future__ import annotations

from typing import Any

from drumbeat.errors import DrumbeatError

try:
    import redis
except ImportError as exc:  # pragma: no cover - the extra is installed in development
    raise DrumbeatError(
        "DRUMBEAT_REDIS_URL needs the redis extra: pip install 'drumbeat[redis]'"
    ) from exc

KEY_PREFIX = "drumbeat:rate:"  # every key Drumbeat writes in Redis starts with this
KEEP_SECONDS = 10  # a second's key outlives it this long (clocks a little behind find it)
TIMEOUT = 1.0  # seconds a connect or a reply may take before Redis counts as away

# Errors that mean Redis is out of reach (the store counts meanwhile).
UNAVAILABLE: tuple[type[Exception], ...] = (redis.exceptions.RedisError, OSError)

_TAKE = """
local taken = tonumber(redis.call('GET', KEYS[1]) or '0')
local granted = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - taken)
if granted <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return granted
"""


class RedisTokens:
    def __init__(self, url: str, prefix: str = KEY_PREFIX) -> None:
        self.client: Any = redis.Redis.from_url(
            url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
        )
        self.prefix = prefix
        self._take = self.client.register_script(_TAKE)

    def key(self, channel: str, window: int) -> str:
        return f"{self.prefix}{channel}:{window}"

    def take(self, channel: str, window: int, wanted: int, limit: int) -> int:
        key = self.key(channel, window)
        return int(self._take(keys=[key], args=[wanted, limit, KEEP_SECONDS]))

    def close(self) -> None:
        self.client.close()
