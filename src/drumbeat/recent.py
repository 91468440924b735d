"""What a serving process looked up lately, kept for a few seconds
(`DRUMBEAT_API_KEY_CACHE_SECONDS`): every tracking request needs its key and its workspace's
attribute types, which change seldom, and reading them cost more than validating 100 events.

A revoked key is therefore accepted for at most that long by a process that saw it just
before. Attribute types are only ever added, so types held a while are a subset of the
store's: a call that meets a type added meanwhile is checked again with the types read afresh
(`api/tracking.py`). Misses are not kept: a key made a moment ago works at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
MAX_HELD = 10_000  # past this, everything held is forgotten (a flood of distinct keys)


class Recent(Generic[K, V]):
    """Values by key, each kept `seconds` after it was read (0: never kept)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._held: dict[K, tuple[V, float]] = {}  # key → (value, kept until)

    def get(self, key: K, load: Callable[[], V | None]) -> V | None:
        """The value held for `key` if still fresh, else `load()` (kept unless None)."""
        held = self.held(key)
        return held if held is not None else self.keep(key, load())

    def held(self, key: K) -> V | None:
        """The value held for `key` if still fresh, else None."""
        held = self._held.get(key)
        return held[0] if held is not None and held[1] > self.clock() else None

    def keep(self, key: K, value: V | None) -> V | None:
        """`value`, just read, held for `seconds` (None, or 0 seconds: nothing is held)."""
        if value is None or self.seconds <= 0:
            self._held.pop(key, None)
            return value
        if len(self._held) >= MAX_HELD:
            self._held = {}
        self._held[key] = (value, self.clock() + self.seconds)
        return value

    def forget(self, key: K) -> None:
        self._held.pop(key, None)
