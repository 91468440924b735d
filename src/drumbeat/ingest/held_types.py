"""A workspace's attribute types as this process read them lately, for checking calls
(the HTTP API's tracking calls, the Python client's identify): reading them cost more than
checking a call. They are held for DRUMBEAT_API_KEY_CACHE_SECONDS (`recent.Recent`).

Types are only ever added, so types held a while can only lack one another process fixed
meanwhile, and only a call that fixes a type can be misjudged: `checking` runs it again
with the types read afresh when its write finds the type fixed otherwise (TYPES_CLASH), or
when it is refused anyway and fixed a type (so that the refusal names every bad field)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from drumbeat.errors import InvalidInput
from drumbeat.model.attributes import AttrType
from drumbeat.recent import Recent
from drumbeat.store import Store
from drumbeat.store.base import TYPES_CLASH

T = TypeVar("T")
Types = dict[str, AttrType]


class HeldTypes:
    def __init__(self, store: Store, seconds: float) -> None:
        self.store = store
        self._held = Recent[int, Types](seconds)

    def checking(self, ws: int, attempt: Callable[[Types, bool], T]) -> T:
        """`attempt(types, fresh)` with the types held if any, else (or if it raises
        TYPES_CLASH with them) with the types read now (`fresh`). An attempt that refuses
        calls with held types and fixed a type raises TYPES_CLASH (`stale`)."""
        held = self._held.held(ws)
        if held is not None:
            try:
                return attempt(held, False)
            except InvalidInput as exc:
                if exc.what != TYPES_CLASH:
                    raise
        types = self._held.keep(ws, self.store.attribute_types(ws)) or {}
        return attempt(types, True)

    def hold(self, ws: int, types: Types) -> None:
        """Hold `types` as if just read (tests: types another process then adds to)."""
        self._held.keep(ws, types)

    def forget(self, ws: int) -> None:
        """After a write that fixed types: this process sees them at once."""
        self._held.forget(ws)


def stale() -> InvalidInput:
    """What an attempt raises when it refuses calls and fixed a type with held types."""
    return InvalidInput("types held may be stale", what=TYPES_CLASH)
