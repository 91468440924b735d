"""SQLite's log is checkpointed by a thread, off the writers' path (`store/checkpoints.py`):
the log is copied into the database and started over while writers keep committing, and no
commit runs a checkpoint of its own below the 64 MiB backstop."""

from __future__ import annotations

import sqlite3
import time

import pytest

from drumbeat.model.records import UserRecord
from drumbeat.store import checkpoints, open_store


def log_frames(path: str) -> int:
    """Frames the log holds now (a PASSIVE checkpoint on a connection of the test's)."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


def test_the_thread_copies_the_log_and_it_starts_over_while_writers_go_on(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "PAUSE", 0.01)
    monkeypatch.setattr(checkpoints, "RESTART_FRAMES", 50)
    path = str(tmp_path / "drumbeat.db")
    store = open_store(f"sqlite:///{path}")
    try:
        ws = store.workspace_id("w", now=0.0)
        thread = store._checkpoints
        assert thread is not None
        deadline = time.monotonic() + 30
        written = 0
        while thread.restarts < 2:  # each write lands while the thread may be copying
            assert time.monotonic() < deadline, f"no restart after {written} writes"
            records = [UserRecord(f"u{written}-{n}", {}, {"n": n}) for n in range(50)]
            store.write_users(ws, records, float(written))
            written += 1
        store.write_users(ws, [UserRecord("last", {}, {})], float(written))  # starts it over
        assert log_frames(path) < written  # the log holds the last writes, not them all
        assert store.count_users(ws) == 50 * written + 1
        running = thread._thread
    finally:
        store.close()
    assert running is not None and not running.is_alive()  # closing the store stopped it
