"""The store's clock and the tick in progress beside it (`pipeline/clock.py`), on SQLite and
PostgreSQL: a tick is open from `begin_tick` until `end_tick`, and setting the clock by hand
forgets it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drumbeat.client import Drumbeat
from drumbeat.pipeline import clock as clock_module
from drumbeat.pipeline.clock import StoreClock
from drumbeat.store import Store, open_store

T = 1_767_571_200.0
HOUR, DAY = 3600.0, 86400.0


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


@pytest.fixture
def fresh_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each StoreClock made from now on reads the store's clock at each use (no test waits
    out FRESH_SECONDS)."""
    monkeypatch.setattr(clock_module, "FRESH_SECONDS", 0.0)


@pytest.mark.usefixtures("fresh_reads")
def test_a_clock_held_by_a_process_follows_another_moving_the_stores(
    store: Store, database_url: str
) -> None:
    StoreClock(store).set(T)
    held = StoreClock(store)
    other = open_store(database_url, migrate=False)  # `drumbeat clock --set`, elsewhere
    try:
        StoreClock(other).set(T + DAY)
        assert held.virtual and held() == T + DAY
        StoreClock(other).reset()
        assert not held.virtual
    finally:
        other.close()


@pytest.mark.usefixtures("fresh_reads")
def test_a_held_client_advances_from_where_another_process_moved_the_clock(
    store: Store, database_url: str, workspace_name: str
) -> None:
    """A script holds a client while `drumbeat advance` runs: its own advance goes on from
    there, not again from the time it first read (ticking the same hours twice and moving
    the store's clock back)."""
    with Drumbeat(database_url, workspace=workspace_name) as held:
        StoreClock(store).set(T)
        with Drumbeat(database_url, workspace=workspace_name) as other:
            other.advance(T + 6 * HOUR, every=HOUR)
        assert held.advance(T + 12 * HOUR, every=HOUR).ticks == 6
    assert StoreClock(store)() == T + 12 * HOUR
