"""The in-process user cache: an LRU of at most DRUMBEAT_CACHE_SIZE users, checked against
the store's versions on every read (`read_through`), so writes by other processes are
never missed; this process's own writes invalidate it too."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from drumbeat.cache import Hits, Stamp
from drumbeat.model.user import User


class MemoryCache:
    validates = True

    def __init__(self, size: int) -> None:
        self.size = size
        self._users: OrderedDict[tuple[int, str], User] = OrderedDict()
        self._invalidated: dict[tuple[int, str], int] = {}  # user → sequence at invalidation
        self._generations: dict[int, int] = {}
        self._sequence = 0
        self._lock = threading.Lock()

    def get_many(self, ws: int, user_ids: Sequence[str]) -> Hits:
        hits = Hits(stamp=Stamp(self._generations.get(ws, 0), self._sequence))
        with self._lock:
            for user_id in user_ids:
                user = self._users.get((ws, user_id))
                if user is not None:
                    self._users.move_to_end((ws, user_id))
                    hits.users[user_id] = user
        return hits

    def set_many(self, ws: int, users: Iterable[User], stamp: Stamp) -> None:
        with self._lock:
            if stamp.generation != self._generations.get(ws, 0):
                return  # read before the workspace was invalidated whole
            for user in users:
                key = (ws, user.user_id)
                if self._invalidated.get(key, -1) > stamp.sequence:
                    continue  # read before its invalidation: maybe older than the store's
                self._users[key] = user
                self._users.move_to_end(key)
            while len(self._users) > self.size:
                self._users.popitem(last=False)

    def invalidate_many(self, ws: int, user_ids: Sequence[str]) -> None:
        with self._lock:
            self._sequence += 1
            for user_id in user_ids:
                self._users.pop((ws, user_id), None)
                self._invalidated[(ws, user_id)] = self._sequence
            if len(self._invalidated) > self.size:  # older marks than any read in flight
                self._invalidated = {
                    k: s for k, s in self._invalidated.items() if s == self._sequence
                }

    def invalidate_workspace(self, ws: int) -> None:
        with self._lock:
            self._generations[ws] = self._generations.get(ws, 0) + 1
            for key in [k for k in self._users if k[0] == ws]:
                del self._users[key]
