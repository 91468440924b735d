"""The store read through the plain driver (sqlite3, psycopg), for the commands that only
read a little (`drumbeat clock`, `drumbeat stats`): importing SQLAlchemy alone takes longer
than such a command should (docs/cli.md, Start-up).

Its few statements are fixed SQL, here and nowhere else; the tables and columns they name
are those of store/schema.py (tests/contract/test_readonly.py runs them on a store the real
code migrated, on both databases, against what the full store returns). It opens a store
only when it is ready as it stands: a file that exists, a schema at this version's revision,
the workspace there. Otherwise `open_readonly` returns None and the command opens the full
store, which makes the file, migrates, makes the workspace, or says what is wrong."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from drumbeat.histogram import BUCKETS, Histogram
from drumbeat.store.schema_head import head

BUCKET_COLUMNS = tuple(f"b{i:02d}" for i in range(BUCKETS))

CURRENT_REVISION = "SELECT version_num FROM alembic_version"
WORKSPACE_ID = "SELECT id FROM workspaces WHERE name = ?"
GET_SETTING = "SELECT value FROM settings WHERE workspace_id = ? AND name = ?"
BATCH_COUNTS = "SELECT status, count(*) FROM batches WHERE workspace_id = ? GROUP BY status"
LANE_DEPTHS = """SELECT lane,
  sum(CASE WHEN status = 'pending' THEN 1 ELSE 0 END),
  sum(CASE WHEN status = 'running' THEN 1 ELSE 0 END),
  min(CASE WHEN status = 'pending' THEN created_at END)
FROM batches WHERE workspace_id = ? AND status IN ('pending', 'running')
GROUP BY lane ORDER BY lane"""
OUTBOX_COUNTS = """SELECT campaign_key, step_id, status, count(*) FROM outbox
WHERE workspace_id = ? GROUP BY campaign_key, step_id, status"""
TIMING_TOTALS = f"""SELECT name, sum("count"), sum(total), max(maximum), sum(items),
  {", ".join(f"sum({column})" for column in BUCKET_COLUMNS)}
FROM timings WHERE workspace_id IN ({{workspaces}}) AND kind = ? AND minute >= ?
GROUP BY name ORDER BY name"""
ACTIVE_MINUTES = """SELECT count(DISTINCT minute) FROM timings
WHERE workspace_id IN ({workspaces}) AND minute >= ?"""

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")


@dataclass(frozen=True)
class TimingTotals:
    """What a span's timings add up to: one histogram per name, and the minutes that
    have any timing (how long something was running in the span)."""

    by_name: dict[str, Histogram]
    active_minutes: int


def timing_totals(rows: Iterable[Sequence[Any]], active: Any) -> TimingTotals:
    """TimingTotals from the rows of TIMING_TOTALS and the count of ACTIVE_MINUTES."""
    by_name = {
        str(name): Histogram(
            int(count), float(total), float(maximum), int(items), [int(b) for b in rest]
        )
        for name, count, total, maximum, items, *rest in rows
    }
    return TimingTotals(by_name, int(active))


def setting_value(stored: Any) -> Any:
    """A settings row's value: JSON text on SQLite, already decoded on PostgreSQL."""
    return (orjson.loads(stored) if isinstance(stored, str | bytes) else stored)["value"]


class ReadOnlyStore:
    """The reads of `clock` and `stats`, each the full store's method of the same name."""

    def __init__(self, connection: Any, dialect: str, error: type[Exception]) -> None:
        self.connection = connection
        self.dialect = dialect
        self.error = error  # the driver's base error

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql if self.dialect == "sqlite" else sql.replace("?", "%s"), params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def close(self) -> None:
        self.connection.close()

    def workspace_id(self, name: str) -> int | None:
        """The workspace's id; None if there is none of that name."""
        rows = self._rows(WORKSPACE_ID, name)
        return int(rows[0][0]) if rows else None

    def get_setting(self, ws: int, name: str) -> Any:
        rows = self._rows(GET_SETTING, ws, name)
        return setting_value(rows[0][0]) if rows else None

    def batch_counts(self, ws: int) -> dict[str, int]:
        return {str(status): int(n) for status, n in self._rows(BATCH_COUNTS, ws)}

    def lane_depths(self, ws: int) -> dict[str, tuple[int, int, float | None]]:
        return {
            str(lane): (int(pending), int(running), None if oldest is None else float(oldest))
            for lane, pending, running, oldest in self._rows(LANE_DEPTHS, ws)
        }

    def outbox_counts(self, ws: int) -> dict[tuple[str, str, str], int]:
        return {(c, s, st): int(n) for c, s, st, n in self._rows(OUTBOX_COUNTS, ws)}

    def timing_totals(self, workspaces: tuple[int, ...], kind: str, since: float) -> TimingTotals:
        marks = ", ".join("?" for _ in workspaces)
        rows = self._rows(TIMING_TOTALS.format(workspaces=marks), *workspaces, kind, since)
        (active,) = self._rows(ACTIVE_MINUTES.format(workspaces=marks), *workspaces, since)
        return timing_totals(rows, active[0])


def open_readonly(url: str) -> ReadOnlyStore | None:
    """The store at `url` if it is ready to read as it stands (module docstring), else
    None."""
    store = _connect(url)
    if store is None:
        return None
    try:
        revision = store._rows(CURRENT_REVISION)
    except store.error:  # no alembic_version table: a store never migrated
        revision = []
    if revision != [(head(),)]:
        store.close()
        return None
    return store


def _connect(url: str) -> ReadOnlyStore | None:
    scheme = url.partition("://")[0]
    if scheme in _POSTGRES_SCHEMES:
        return _postgres(url)
    path = next((url[len(p) :] for p in _SQLITE_PREFIXES if url.startswith(p)), None)
    # an in-memory database, a query (options) or %-escapes: the full store reads those
    if not path or path == ":memory:" or any(c in path for c in "?%") or not os.path.isfile(path):
        return None
    import sqlite3

    return ReadOnlyStore(sqlite3.connect(path, timeout=60), "sqlite", sqlite3.Error)


def _postgres(url: str) -> ReadOnlyStore | None:
    try:
        import psycopg
    except ImportError:
        return None
    info = "postgresql://" + url.partition("://")[2]
    # as the full store: a server that does not answer fails in seconds, unless the URL says
    timeout: dict[str, Any] = {} if "connect_timeout" in info else {"connect_timeout": 5}
    try:
        connection = psycopg.connect(info, autocommit=True, **timeout)
    except psycopg.Error:
        return None
    return ReadOnlyStore(connection, "postgresql", psycopg.Error)
