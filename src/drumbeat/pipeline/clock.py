"""Time as Drumbeat sees it: the real clock, or the store's virtual clock once
`drumbeat advance` (or the demo) has set one, so every process agrees on "now".

Beside it the store keeps the tick in progress: a tick is begun (its time written, and the
virtual clock moved to it, in one transaction) and marked done only after its work is done,
so a run killed in the middle of a tick finds that tick still open when it starts again."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the quick read of `drumbeat clock` imports this without SQLAlchemy
    from drumbeat.store import Store
    from drumbeat.store.readonly import ReadOnlyStore

CLOCK_SETTING = "virtual_now"
TICK_SETTING = "tick"  # {"at": time of the last tick begun, "done": whether its work is done}
CLOCK_WORKSPACE = 1  # the default workspace holds the store-wide virtual clock


FRESH_SECONDS = 1.0  # a StoreClock reads the store's clock again when its read is older


def store_now(store: Store | ReadOnlyStore) -> float:
    """Now on the store's timeline, read afresh: its virtual time if one is set, else real
    time."""
    value = store.get_setting(CLOCK_WORKSPACE, CLOCK_SETTING)
    return float(value) if value is not None else time.time()


class StoreClock:
    """Callable clock: the virtual time kept in the store if one is set, else real time.
    The store's value is read again once the last read is FRESH_SECONDS old: another
    process (`drumbeat advance`, `drumbeat clock --set`) may have moved it, and a process
    holding this clock (a Python API client, a runner) would otherwise write and tick at a
    time the store has left, even move the store's clock back. What this clock writes
    itself it knows at once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known(self._read())

    def _read(self) -> float | None:
        value = self.store.retrying(
            lambda: self.store.get_setting(CLOCK_WORKSPACE, CLOCK_SETTING), "reading the clock"
        )
        return float(value) if value is not None else None

    def _known(self, now: float | None) -> None:
        self._now, self._read_at = now, time.monotonic()

    def _current(self) -> float | None:
        if time.monotonic() - self._read_at >= FRESH_SECONDS:
            self._known(self._read())
        return self._now

    @property
    def virtual(self) -> bool:
        return self._current() is not None

    def __call__(self) -> float:
        now = self._current()
        return now if now is not None else time.time()

    def set(self, now: float) -> None:
        """Start (or move) the virtual clock by hand; a tick left open is forgotten, since
        "now" no longer follows from it."""
        self._write({CLOCK_SETTING: now, TICK_SETTING: None}, "setting the clock")
        self._known(now)

    def reset(self) -> None:
        """Back to real time."""
        self._write({CLOCK_SETTING: None, TICK_SETTING: None}, "resetting the clock")
        self._known(None)

    def begin_tick(self, at: float, *, real_time: bool = False) -> None:
        """Record that the tick at `at` has begun; on a virtual clock, move the clock to it
        in the same transaction, unless the tick is on `real_time` (`drumbeat run`'s, which
        stops when it finds a virtual clock set under it, and must not move it meanwhile)."""
        virtual = not real_time and self.virtual
        values: dict[str, object] = {TICK_SETTING: {"at": at, "done": False}}
        if virtual:
            values[CLOCK_SETTING] = at
        self._write(values, "beginning a tick")
        if virtual:
            self._known(at)

    def end_tick(self, at: float) -> None:
        """Record that the work of the tick at `at` is done."""
        self._write({TICK_SETTING: {"at": at, "done": True}}, "ending a tick")

    def _write(self, values: dict[str, object], what: str) -> None:
        """The clock's settings, written again after a lost connection (the same values)."""
        self.store.retrying(lambda: self.store.set_settings(CLOCK_WORKSPACE, values), what)

    def open_tick(self) -> float | None:
        """The time of a tick begun and never finished (its run was killed), if any."""
        tick = self.store.retrying(
            lambda: self.store.get_setting(CLOCK_WORKSPACE, TICK_SETTING), "reading the tick"
        )
        return float(tick["at"]) if tick is not None and not tick["done"] else None
