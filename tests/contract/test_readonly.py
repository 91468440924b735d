"""The read-only store (store/readonly.py: fixed SQL through the plain driver, for `drumbeat
clock` and `stats`) against the schema, on SQLite and PostgreSQL: on a store the real code
migrated, with rows written through the SQLAlchemy schema, each of its reads returns what
the full store's method of the same name returns (a table or column renamed on one side
only fails here). And it opens only a store that is ready as it stands."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from drumbeat.histogram import Histogram
from drumbeat.pipeline.clock import CLOCK_SETTING, CLOCK_WORKSPACE
from drumbeat.store import Store, open_store
from drumbeat.store.readonly import ReadOnlyStore, open_readonly
from drumbeat.store.schema import batches, outbox
from drumbeat.store.schema_head import head
from tests.e2e.running import own_store

NOW = 1_800_000_000.0


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    with own_store(database_url) as own:
        yield own


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    store = open_store(url)
    yield store
    store.close()


@pytest.fixture
def quick(store: Store, url: str) -> Iterator[ReadOnlyStore]:
    opened = open_readonly(url)
    assert opened is not None
    yield opened
    opened.close()


def _batch(ws: int, lane: str, status: str, created_at: float) -> dict[str, Any]:
    return {
        "workspace_id": ws,
        "campaign_key": "c",
        "lane": lane,
        "kind": "enter",
        "user_ids": ["u1", "u2"],
        "status": status,
        "due_at": NOW,
        "fence": 0,
        "attempts": 0,
        "created_at": created_at,
    }


def _message(ws: int, n: int, campaign: str, step: str, status: str) -> dict[str, Any]:
    return {
        "workspace_id": ws,
        "dedupe_key": f"{ws}:{n}",
        "campaign_key": campaign,
        "step_id": step,
        "user_id": f"u{n}",
        "entry_count": 1,
        "channel": "email",
        "payload": {"subject": "hi"},
        "status": status,
        "attempts": 0,
        "available_at": NOW,
        "created_at": NOW,
    }


def _fill(store: Store, ws: int, other: int) -> None:
    """Rows of every kind the reads sum, in `ws` and in `other` (which they must leave out)."""
    rows = [
        _batch(ws, "fast", "pending", NOW - 30),
        _batch(ws, "fast", "pending", NOW - 10),
        _batch(ws, "fast", "running", NOW - 20),
        _batch(ws, "slow", "pending", NOW - 5),
        _batch(ws, "slow", "running", NOW - 50),
        _batch(ws, "fast", "done", NOW - 90),
        _batch(ws, "fast", "dead", NOW - 90),
        _batch(other, "fast", "pending", NOW - 99),
    ]
    statuses = ["pending", "sent", "sent", "failed", "dead", "sent"]
    messages = [
        _message(ws, n, f"c{n % 2}", f"s{n % 3}", status) for n, status in enumerate(statuses)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(batches), rows)
        conn.execute(insert(outbox), [*messages, _message(other, 99, "c0", "s0", "sent")])
    store.set_settings(CLOCK_WORKSPACE, {CLOCK_SETTING: NOW})
    store.set_setting(ws, "shape", {"limit": 3, "per": [1.5, "x"]})


def _timings(store: Store) -> tuple[int, int]:
    """Timings of two workspaces of the test's own, over three minutes and two kinds."""
    one, two = random.sample(range(10**6, 10**9), 2)
    rows = {}
    for minute in (NOW - 120, NOW - 60, NOW):
        for ws, kind, name, seconds in (
            (one, "query", "q.a", 0.002),
            (one, "query", "q.b", 0.5),
            (two, "query", "q.a", 0.03),
            (one, "stage", "stage.batch", 1.25),
            (one, "count", "cache.hits", 0.0),
        ):
            histogram = Histogram()
            histogram.add(seconds * (1 + minute % 7), items=3)
            rows[(minute, ws, kind, name)] = histogram
    store.add_timings(rows)
    return one, two


def test_each_read_returns_what_the_full_store_returns(
    store: Store, quick: ReadOnlyStore, workspace_name: str
) -> None:
    ws = store.workspace_id(workspace_name, now=NOW)
    other = store.workspace_id(f"{workspace_name}-other", now=NOW)
    _fill(store, ws, other)
    one, two = _timings(store)
    reads: list[tuple[str, tuple[Any, ...]]] = [
        ("batch_counts", (ws,)),
        ("lane_depths", (ws,)),
        ("outbox_counts", (ws,)),
        ("get_setting", (CLOCK_WORKSPACE, CLOCK_SETTING)),
        ("get_setting", (ws, "shape")),
        ("timing_totals", ((one,), "query", NOW - 60)),
        ("timing_totals", ((one, two), "query", NOW - 120)),
        ("timing_totals", ((one,), "stage", 0.0)),
        ("timing_totals", ((one,), "count", 0.0)),
    ]
    for name, args in reads:
        full = getattr(store, name)(*args)
        assert full, (name, args)  # something to compare
        found = getattr(quick, name)(*args)
        assert (dict(found) if name == "batch_counts" else found) == full, (name, args)
    assert quick.get_setting(ws, "none such") is None
    assert quick.workspace_id(workspace_name) == ws
    assert quick.workspace_id(f"{workspace_name}-none") is None


def test_it_opens_only_a_store_at_this_versions_revision(store: Store, url: str) -> None:
    def revision(version: str) -> None:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": version})

    revision("0001")  # older: the full store migrates it
    assert open_readonly(url) is None
    revision(str(head()))
    opened = open_readonly(url)
    assert opened is not None
    opened.close()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://h/db", "not a url"], ids=str
)
def test_what_it_cannot_read_is_left_to_the_full_store(url: str) -> None:
    assert open_readonly(url) is None


def test_a_file_neither_there_nor_migrated_is_left_to_the_full_store(tmp_path: Path) -> None:
    path = tmp_path / "drumbeat.db"
    assert open_readonly(f"sqlite:///{path}") is None
    assert not path.exists()  # and not made
    sqlite3.connect(path).close()
    assert open_readonly(f"sqlite:///{path}") is None
