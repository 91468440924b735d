"""The store's clock and the tick in progress beside it (`pipeline/clock.py`), on SQLite and
PostgreSQL: a tick is open from `begin_tick` until `end_tick`, and setting the clock by hand
forgets it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drumbeat.pipeline.clock import StoreClock
from drumbeat.store import Store, open_store

T = 1_767_571_200.0


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    before = StoreClock(opened)  # the store-wide clock, as later tests on this database know it
    try:
        yield opened
    finally:
        if before.virtual:
            StoreClock(opened).set(before())
        else:
            StoreClock(opened).reset()
        opened.close()


def test_a_tick_is_open_from_its_start_until_its_work_is_done(store: Store) -> None:
    clock = StoreClock(store)
    clock.set(T)
    clock.begin_tick(T + 60)
    again = StoreClock(store)  # another process, after a kill
    assert again() == T + 60 and again.open_tick() == T + 60
    clock.end_tick(T + 60)
    assert again.open_tick() is None and StoreClock(store)() == T + 60


def test_setting_the_clock_by_hand_forgets_an_open_tick(store: Store) -> None:
    clock = StoreClock(store)
    clock.set(T)
    clock.begin_tick(T + 60)
    clock.set(T + 3600)
    assert StoreClock(store).open_tick() is None
    clock.begin_tick(T + 7200)
    clock.reset()
    assert StoreClock(store).open_tick() is None and not StoreClock(store).virtual


def test_a_tick_on_the_real_clock_leaves_the_clock_real(store: Store) -> None:
    clock = StoreClock(store)
    clock.reset()
    clock.begin_tick(T)
    assert not StoreClock(store).virtual and StoreClock(store).open_tick() == T
    clock.end_tick(T)
    assert StoreClock(store).open_tick() is None
