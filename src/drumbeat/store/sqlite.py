"""SQLite bulk writes: executemany of one upsert statement, numbered parameters reused.

File imports (`ingest/batches.py`) put each batch into temporary tables with multi-row INSERTs
and upsert users from there, in one transaction until the whole file is known good."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import closing
from functools import lru_cache
from itertools import chain
from typing import Any, cast

import orjson
from sqlalchemy import Connection

from drumbeat.ingest.staging import WIDTH, Staged
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.store.base import Store
from drumbeat.store.core import chunks
from drumbeat.store.driver_statement import driver_statement
from drumbeat.store.names import names_json, names_update

# ?1 ws, ?2 user_id, ?3 email, ?4 timezone, ?5 unsubscribed, ?6 created_at, ?7 last_seen_at,
# ?8 attribute patch (JSON merge patch: null removes), ?9 now, ?10 the names written
# (`store/names.py`). json_patch('{}', p) drops nulls.
_FIELDS = (
    ("email", "?3"),
    ("timezone", "?4"),
    ("unsubscribed", "?5"),
    ("created_at", "?6"),
    ("last_seen_at", "?7"),
)


@lru_cache(maxsize=64)
def _upsert_users_sql(gives: tuple[bool, ...], patches: bool) -> str:
    """The upsert of users who give the fields flagged in `gives` (in `_FIELDS` order) and
    an attribute patch or not: an existing user's update assigns only those columns, because
    SQLite rewrites the entries of every index over a column assigned, changed or not (all
    the expression indexes on `attributes`, `store/indexes.py`, for a `last_seen_at`)."""
    assigned = [field for field, given in zip(_FIELDS, gives, strict=True) if given]
    if patches:
        assigned.append(("attributes", "json_patch(attributes, ?8)"))
    insert = """
INSERT INTO users (workspace_id, user_id, email, timezone, unsubscribed, created_at,
                   last_seen_at, attributes, updated_at, version, changed_names, names_after)
VALUES (?1, ?2, ?3, ?4, coalesce(?5, 0), ?6, ?7, json_patch('{}', ?8), ?9, 1, ?10, ?9)
ON CONFLICT (workspace_id, user_id) DO """
    if not assigned:
        return insert + "NOTHING"
    sets = ", ".join(f"{column} = {value}" for column, value in assigned)
    changed = " OR ".join(f"{value} IS NOT {column}" for column, value in assigned)
    names = names_update(old="", new="?10", now="?9", merge=_NAMES_MERGE)
    return (
        f"{insert}UPDATE SET {sets}, updated_at = ?9, version = version + 1, {names} "
        f"WHERE {changed}"
    )


_NAMES_MERGE = "json_patch({}, {})"


# Events and their users go in by one multi-row INSERT each (up to ROWS_A_STATEMENT rows):
# the sqlite3 module lets go of the GIL around each step of a statement, so an executemany
# of 100 rows waited for it 100 times while the serving process's other threads checked
# their requests, holding the write lock all along.
ROWS_A_STATEMENT = 100  # 700 parameters: under the 999 of SQLite before 3.32


_INSERT_EVENTS = (
    "INSERT INTO events (workspace_id, user_id, name, ts, properties, message_id, received_at)",
    "(?, ?, ?, ?, ?, ?, ?)",
)
_ADD_USERS = (
    "INSERT INTO users (workspace_id, user_id, unsubscribed, attributes, updated_at, version,"
    " changed_names, names_after)",
    "(?, ?, 0, '{}', ?, 1, '{}', ?)",
)


@lru_cache(maxsize=32)
def _rows_sql(insert: tuple[str, str], rows: int) -> str:
    """`insert` of `rows` rows in one statement, a row already there left as it is."""
    head, row = insert
    return f"{head} VALUES {', '.join([row] * rows)} ON CONFLICT DO NOTHING"


def user_row(ws: int, record: UserRecord, now: float) -> tuple[object, ...]:
    fields = record.fields
    return (
        ws,
        record.user_id,
        fields.get("email"),
        fields.get("timezone"),
        fields.get("unsubscribed"),
        fields.get("created_at"),
        fields.get("last_seen_at"),
        orjson.dumps(record.attributes).decode(),
        now,
        names_json(chain(record.fields, record.attributes), now),
    )


class SQLiteStore(Store):
    dialect = "sqlite"
    import_lanes = 1  # one writer at a time

    def write_one(self, statement: Any, values: Mapping[str, Any]) -> Sequence[Any] | None:
        """In autocommit too: the statement is its own transaction, its write lock taken at
        its start as BEGIN IMMEDIATE takes it (waited for the same way), let go at its end;
        in the writers' turn. On the driver's connection (`DriverStatement`): a batch's claim
        by id through SQLAlchemy, in BEGIN IMMEDIATE and COMMIT of its own, spent over half
        its time in SQLAlchemy's execution (`drumbeat bench pipeline`)."""
        run = driver_statement(statement, self.engine.dialect)
        with self._writers_turn(), closing(self.engine.raw_connection()) as pooled:
            return run.first(pooled.driver_connection, values)

    def _upsert_users(
        self, conn: Connection, ws: int, rows: Sequence[UserRecord], now: float
    ) -> int:
        self._require_workspace(conn, ws)
        shapes: dict[tuple[tuple[bool, ...], bool], list[tuple[object, ...]]] = {}
        for record in rows:  # each user once (`merge_user_records`): any order will do
            row = user_row(ws, record, now)
            shape = (tuple(value is not None for value in row[2:7]), bool(record.attributes))
            shapes.setdefault(shape, []).append(row)
        written = 0
        for (gives, patches), part in shapes.items():
            cursor = conn.exec_driver_sql(_upsert_users_sql(gives, patches), part)
            written += max(cursor.rowcount, 0)
        return written

    def _add_events(
        self, conn: Connection, ws: int, rows: Sequence[EventRecord], now: float
    ) -> int:
        raw = cast(Any, conn.connection.driver_connection)
        dumps, inserted = orjson.dumps, 0
        for part in chunks(rows, ROWS_A_STATEMENT):
            params = [
                value
                for r in part
                for value in (ws, r.user_id, r.name, r.ts, dumps(r.properties).decode(),
                              r.message_id, now)
            ]  # fmt: skip
            inserted += max(raw.execute(_rows_sql(_INSERT_EVENTS, len(part)), params).rowcount, 0)
        user_ids = sorted({r.user_id for r in rows})
        for named in chunks(user_ids, ROWS_A_STATEMENT):
            params = [value for user_id in named for value in (ws, user_id, now, now)]
            raw.execute(_rows_sql(_ADD_USERS, len(named)), params)
        return inserted

    def _import_staged(
        self, conn: Connection, ws: int, staged: Staged, now: float, *, new: bool
    ) -> tuple[int, bool]:
        """A batch of a file import, in the import's transaction (open until the whole file
        is known good, holding the write lock): staged in temporary tables by multi-row
        INSERTs (the GIL is free while SQLite works on thousands of rows at once; a per-row
        executemany would wait for it at every row), then upserted by shape, new users or
        not (`new` is PostgreSQL's: its upsert's speculative insertion costs its server a
        third more than an insert). The values are emptied once staged."""
        self._require_workspace(conn, ws)
        raw = cast(Any, conn.connection.driver_connection)
        for sql in _IMPORT_TABLES:
            raw.execute(sql)
        dumps = orjson.dumps
        patches = [v for user, p in staged.patches.items() for v in (user, dumps(p).decode())]
        _insert_all(raw, "import_rows", WIDTH, staged.values)
        _insert_all(raw, "import_patches", 2, patches)
        staged.values.clear()  # staged: no need to keep them while SQLite upserts
        del patches
        written = 0
        for gives, removes in sorted(staged.shapes):
            params = (ws, now, gives, removes)
            written += max(raw.execute(_upsert_imported(gives, removes), params).rowcount, 0)
        raw.execute("DELETE FROM temp.import_rows")
        raw.execute("DELETE FROM temp.import_patches")
        return written, False


# ---- file imports -------------------------------------------------------------------------
# A batch is staged (`ingest/staging.py`) in import_rows, and the whole attribute patch of
# the users that remove attributes beside it, by user id.
# (Upserting straight from multi-row VALUES costs SQLite more than staging first.)
_IMPORT_TABLES = (
    """CREATE TEMP TABLE IF NOT EXISTS import_rows (
  user_id TEXT NOT NULL, email TEXT, timezone TEXT, unsubscribed INTEGER, created_at REAL,
  last_seen_at REAL, attrs TEXT NOT NULL, removes INTEGER NOT NULL, names TEXT NOT NULL)""",
    """CREATE TEMP TABLE IF NOT EXISTS import_patches (
  user_id TEXT PRIMARY KEY, patch TEXT NOT NULL) WITHOUT ROWID""",
)
# SQLite takes 32,766 parameters a statement (since 3.32).
STATEMENT_PARAMETERS = 32_766

# New users take the null-free attributes as they are (no json_patch); `excluded` cannot tell
# "unsubscribed not given" from 0 nor carry the nulls, so a batch goes in by shape, as on
# PostgreSQL; a patch that removes attributes is looked up by its user id.
_UPSERT_IMPORTED = """
INSERT INTO users (workspace_id, user_id, email, timezone, unsubscribed, created_at,
                   last_seen_at, attributes, updated_at, version, changed_names, names_after)
SELECT ?1, user_id, email, timezone, coalesce(unsubscribed, 0), created_at, last_seen_at, attrs,
       ?2, 1, names, ?2
FROM temp.import_rows
WHERE (unsubscribed IS NOT NULL) = ?3 AND removes = ?4
ON CONFLICT (workspace_id, user_id) DO UPDATE SET
  email = coalesce(excluded.email, email), timezone = coalesce(excluded.timezone, timezone),
  unsubscribed = {unsubscribed}, created_at = coalesce(excluded.created_at, created_at),
  last_seen_at = coalesce(excluded.last_seen_at, last_seen_at), attributes = {attributes},
  updated_at = ?2, version = version + 1, {names}
WHERE coalesce(excluded.email, email) IS NOT email
   OR coalesce(excluded.timezone, timezone) IS NOT timezone OR {unsubscribed} IS NOT unsubscribed
   OR coalesce(excluded.created_at, created_at) IS NOT created_at
   OR coalesce(excluded.last_seen_at, last_seen_at) IS NOT last_seen_at
   OR {attributes} IS NOT attributes
"""
_MERGED = "json_patch(attributes, excluded.attributes)"
_MERGED_AND_REMOVED = (
    "json_patch(attributes,"
    " (SELECT p.patch FROM temp.import_patches p WHERE p.user_id = excluded.user_id))"
)


def _upsert_imported(gives_unsubscribed: bool, removes: bool) -> str:
    return _UPSERT_IMPORTED.format(
        unsubscribed="excluded.unsubscribed" if gives_unsubscribed else "unsubscribed",
        attributes=_MERGED_AND_REMOVED if removes else _MERGED,
        names=names_update(old="", new="excluded.changed_names", now="?2", merge=_NAMES_MERGE),
    )


@lru_cache(maxsize=8)
def _insert_sql(table: str, width: int, rows: int) -> str:
    row = f"({', '.join('?' * width)})"
    return f"INSERT INTO temp.{table} VALUES {', '.join([row] * rows)}"


def _insert_all(raw: Any, table: str, width: int, values: list[Any]) -> None:
    """Insert a flat list of values, `width` a row, as many rows a statement as SQLite takes."""
    step = STATEMENT_PARAMETERS // width * width
    for start in range(0, len(values), step):
        part = values[start : start + step]
        raw.execute(_insert_sql(table, width, len(part) // width), part)
