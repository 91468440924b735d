"""SQLite bulk writes: executemany of one upsert statement, numbered parameters reused;
file imports go through a scratch database attached to one connection (`SQLiteUserImport`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Connection

from drumbeat import metrics
from drumbeat.model.attributes import AttrType
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.store.base import Store

# ?1 ws, ?2 user_id, ?3 email, ?4 timezone, ?5 unsubscribed, ?6 created_at, ?7 last_seen_at,
# ?8 attribute patch (JSON merge patch: null removes), ?9 now. json_patch('{}', p) drops nulls.
_UPSERT_USERS = """
INSERT INTO users (workspace_id, user_id, email, timezone, unsubscribed, created_at,
                   last_seen_at, attributes, updated_at, version)
VALUES (?1, ?2, ?3, ?4, coalesce(?5, 0), ?6, ?7, json_patch('{}', ?8), ?9, 1)
ON CONFLICT (workspace_id, user_id) DO UPDATE SET
  email = coalesce(?3, email), timezone = coalesce(?4, timezone),
  unsubscribed = coalesce(?5, unsubscribed), created_at = coalesce(?6, created_at),
  last_seen_at = coalesce(?7, last_seen_at), attributes = json_patch(attributes, ?8),
  updated_at = ?9, version = version + 1
WHERE coalesce(?3, email) IS NOT email OR coalesce(?4, timezone) IS NOT timezone
   OR coalesce(?5, unsubscribed) IS NOT unsubscribed OR coalesce(?6, created_at) IS NOT created_at
   OR coalesce(?7, last_seen_at) IS NOT last_seen_at OR json_patch(attributes, ?8) IS NOT attributes
"""

_INSERT_EVENTS = """
INSERT INTO events (workspace_id, user_id, name, ts, properties, message_id)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""

_TOUCH_USERS = """
INSERT INTO users (workspace_id, user_id, unsubscribed, attributes, updated_at, version)
VALUES (?1, ?2, 0, '{}', ?3, 1)
ON CONFLICT (workspace_id, user_id) DO UPDATE SET updated_at = ?3
"""


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
    )


class SQLiteStore(Store):
    dialect = "sqlite"

    def _upsert_users(
        self, conn: Connection, ws: int, rows: Sequence[UserRecord], now: float
    ) -> int:
        cursor = conn.exec_driver_sql(_UPSERT_USERS, [user_row(ws, r, now) for r in rows])
        return max(cursor.rowcount, 0)

    def _insert_events(self, conn: Connection, ws: int, rows: Sequence[EventRecord]) -> int:
        params = [
            (ws, r.user_id, r.name, r.ts, orjson.dumps(r.properties).decode(), r.message_id)
            for r in rows
        ]
        return max(conn.exec_driver_sql(_INSERT_EVENTS, params).rowcount, 0)

    def _touch_users(self, conn: Connection, ws: int, user_ids: Sequence[str], now: float) -> None:
        conn.exec_driver_sql(_TOUCH_USERS, [(ws, user_id, now) for user_id in user_ids])


# ---- file imports -------------------------------------------------------------------------
# Rows are staged while the file is checked (one INSERT … SELECT over json_each per call: the
# GIL is free while SQLite works), then each batch is one upsert from the stage. Staged row:
# (batch, user_id, email, timezone, unsubscribed, created_at, last_seen_at, attributes without
# nulls, the whole attribute patch when it removes some (else None)).
_STAGED = "drumbeat_import"
_STAGED_TABLE = f"""
CREATE TABLE {_STAGED}.users (
  batch INTEGER NOT NULL, user_id TEXT NOT NULL, email TEXT, timezone TEXT, unsubscribed INTEGER,
  created_at REAL, last_seen_at REAL, attrs TEXT NOT NULL, patch TEXT,
  PRIMARY KEY (batch, user_id)) WITHOUT ROWID
"""
# Each column is read from the row's JSON (SQLite caches the parse of `value` meanwhile);
# attributes stay JSON text, the text json_patch gives back for them.
_STAGE_USERS = f"""
INSERT INTO {_STAGED}.users
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
       value ->> 6, value ->> 7, value ->> 8
FROM json_each(?)
"""

# New users take the null-free attributes as they are (no json_patch); `excluded` cannot tell
# "unsubscribed not given" from 0 nor carry the nulls, so a batch goes in by shape, as on
# PostgreSQL; a patch that removes attributes is looked up in the stage by its key.
_UPSERT_STAGED = f"""
INSERT INTO users (workspace_id, user_id, email, timezone, unsubscribed, created_at,
                   last_seen_at, attributes, updated_at, version)
SELECT ?1, user_id, email, timezone, coalesce(unsubscribed, 0), created_at, last_seen_at, attrs,
       ?2, 1
FROM {_STAGED}.users
WHERE batch = ?3 AND (unsubscribed IS NOT NULL) = ?4 AND (patch IS NOT NULL) = ?5
ON CONFLICT (workspace_id, user_id) DO UPDATE SET
  email = coalesce(excluded.email, email), timezone = coalesce(excluded.timezone, timezone),
  unsubscribed = {{unsubscribed}}, created_at = coalesce(excluded.created_at, created_at),
  last_seen_at = coalesce(excluded.last_seen_at, last_seen_at), attributes = {{attributes}},
  updated_at = ?2, version = version + 1
WHERE coalesce(excluded.email, email) IS NOT email
   OR coalesce(excluded.timezone, timezone) IS NOT timezone OR {{unsubscribed}} IS NOT unsubscribed
   OR coalesce(excluded.created_at, created_at) IS NOT created_at
   OR coalesce(excluded.last_seen_at, last_seen_at) IS NOT last_seen_at
   OR {{attributes}} IS NOT attributes
"""
_PATCH = "json_patch(attributes, excluded.attributes)"
_PATCH_STAGED = (
    f"json_patch(attributes, (SELECT s.patch FROM {_STAGED}.users s"
    " WHERE s.batch = ?3 AND s.user_id = excluded.user_id))"
)


def _upsert_staged(gives_unsubscribed: bool, unsets: bool) -> str:
    return _UPSERT_STAGED.format(
        unsubscribed="excluded.unsubscribed" if gives_unsubscribed else "unsubscribed",
        attributes=_PATCH_STAGED if unsets else _PATCH,
    )


class SQLiteUserImport:
    """One users import: `stage` rows (from any one thread) while the file is checked, then
    `write` each batch in a transaction of its own; `close` drops the stage. One lane: SQLite
    has one writer at a time."""

    lanes = 1

    def __init__(self, store: SQLiteStore, ws: int, now: float) -> None:
        self.store, self.ws, self.now = store, ws, now
        self._folder = tempfile.TemporaryDirectory(prefix="drumbeat-import-")
        self._conn = store.engine.connect().execution_options(sqlite_immediate=True)
        self._raw = cast(Any, self._conn.connection.driver_connection)
        self._attached = False
        try:
            path = str(Path(self._folder.name) / "staged.db")
            self._raw.execute(f"ATTACH DATABASE ? AS {_STAGED}", (path,))
            self._attached = True
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-32768"):
                self._raw.execute(f"PRAGMA {_STAGED}.{pragma}")
            self._raw.execute(_STAGED_TABLE)
        except BaseException:
            self.close()
            raise

    def stage(self, lane: int, rows: Sequence[Sequence[Any]], again: bool = False) -> None:
        """Stage rows (one per user and batch; `again`: replacing rows staged before) in one
        statement: SQLite reads the JSON array while the GIL is free, so this runs beside
        the thread that checks the file."""
        sql = _STAGE_USERS.replace("INSERT", "INSERT OR REPLACE", 1) if again else _STAGE_USERS
        self._raw.execute(sql, (orjson.dumps(rows).decode(),))

    def write(
        self,
        lane: int,
        batch: int,
        size: int,
        shapes: Iterable[tuple[bool, bool]],
        new_types: Mapping[str, AttrType],
    ) -> int:
        """Upsert a staged batch as `Store.write_users` would; returns the users written."""
        written = 0
        with metrics.timed("store.write_users", size), self._conn.begin():
            self.store._register_types(self._conn, self.ws, new_types)
            for gives, unsets in sorted(shapes):
                params = (self.ws, self.now, batch, gives, unsets)
                written += max(self._raw.execute(_upsert_staged(gives, unsets), params).rowcount, 0)
        return written

    def close(self) -> None:
        try:
            if self._attached:
                self._attached = False
                self._raw.execute(f"DETACH DATABASE {_STAGED}")
        except Exception:  # never hand the pool a connection with the stage still attached
            self._conn.invalidate()
        finally:
            self._conn.close()
            self._folder.cleanup()
