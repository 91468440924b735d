"""Time as Drumbeat sees it: the real clock, or the store's virtual clock once
`drumbeat advance` (or the demo) has set one, so every process agrees on "now"."""

from __future__ import annotations

import time

from drumbeat.store import Store

CLOCK_SETTING = "virtual_now"
CLOCK_WORKSPACE = 1  # the default workspace holds the store-wide virtual clock


def store_now(store: Store) -> float:
    """Now on the store's timeline, read afresh: its virtual time if one is set, else real
    time. For a part built once and used across ticks, which a StoreClock's cached value
    would leave behind."""
    value = store.get_setting(CLOCK_WORKSPACE, CLOCK_SETTING)
    return float(value) if value is not None else time.time()


class StoreClock:
    """Callable clock: the virtual time kept in the store if one is set, else real time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._now: float | None = self._read()

    def _read(self) -> float | None:
        value = self.store.retrying(
            lambda: self.store.get_setting(CLOCK_WORKSPACE, CLOCK_SETTING), "reading the clock"
        )
        return float(value) if value is not None else None

    @property
    def virtual(self) -> bool:
        return self._now is not None

    def __call__(self) -> float:
        return self._now if self._now is not None else time.time()

    def set(self, now: float) -> None:
        self.store.retrying(
            lambda: self.store.set_setting(CLOCK_WORKSPACE, CLOCK_SETTING, now), "setting the clock"
        )
        self._now = now

    def reset(self) -> None:
        """Back to real time."""
        self.store.set_setting(CLOCK_WORKSPACE, CLOCK_SETTING, None)
        self._now = None
