"""PostgreSQL bulk writes: COPY into a temporary table, then one MERGE or INSERT … SELECT;
file imports stage the whole file in a temporary table first (`PostgresUserImport`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection

from drumbeat import metrics
from drumbeat.model.attributes import AttrType
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.store.base import Store

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staged_users (
  user_id varchar(255) COLLATE "C", email text, timezone text, unsubscribed boolean,
  created_at float8, last_seen_at float8, attrs jsonb, unset text[]) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staged_events (
  user_id varchar(255) COLLATE "C", name text, ts float8, properties jsonb, message_id text)
  ON COMMIT DELETE ROWS;
"""

# INSERT … ON CONFLICT finds each user through the primary key whatever the statistics say
# (a MERGE join can pick a scan of the whole workspace while a big import outruns ANALYZE).
# `excluded` cannot tell "unsubscribed not given" from false, nor carry the attributes to
# remove, so rows go in up to four statements by shape (most batches need one).
# A user changes only if a given field or the merged attributes differ: unchanged users keep
# their version and updated_at, so re-imports cost the planner nothing.
_UPSERT_USERS = """
INSERT INTO users AS u (workspace_id, user_id, email, timezone, unsubscribed, created_at,
                        last_seen_at, attributes, updated_at, version)
SELECT %(ws)s, user_id, email, timezone, coalesce(unsubscribed, false), created_at,
       last_seen_at, attrs, %(now)s, 1
FROM {source}
WHERE {only}(unsubscribed IS NOT NULL) = %(gives_unsubscribed)s AND (unset <> '{{}}') = %(unsets)s
ON CONFLICT (workspace_id, user_id) DO UPDATE SET
  email = coalesce(excluded.email, u.email), timezone = coalesce(excluded.timezone, u.timezone),
  unsubscribed = {unsubscribed}, created_at = coalesce(excluded.created_at, u.created_at),
  last_seen_at = coalesce(excluded.last_seen_at, u.last_seen_at),
  attributes = {attributes}, updated_at = %(now)s, version = u.version + 1
WHERE (coalesce(excluded.email, u.email), coalesce(excluded.timezone, u.timezone), {unsubscribed},
       coalesce(excluded.created_at, u.created_at),
       coalesce(excluded.last_seen_at, u.last_seen_at), {attributes})
  IS DISTINCT FROM (u.email, u.timezone, u.unsubscribed, u.created_at, u.last_seen_at,
                    u.attributes)
"""
_MERGED = "u.attributes || excluded.attributes"
_MERGED_AND_UNSET = (
    "(u.attributes - (SELECT s.unset FROM {source} s WHERE {only_s}s.user_id = excluded.user_id))"
    " || excluded.attributes"
)


def _upsert_sql(
    gives: bool, unsets: bool, source: str = "staged_users", batch: bool = False
) -> str:
    """The upsert of one shape of rows from `source` (with `batch`: of the batch %(batch)s)."""
    only, only_s = ("batch = %(batch)s AND ", "s.batch = %(batch)s AND ") if batch else ("", "")
    attributes = _MERGED_AND_UNSET.format(source=source, only_s=only_s) if unsets else _MERGED
    return _UPSERT_USERS.format(
        unsubscribed="excluded.unsubscribed" if gives else "u.unsubscribed",
        attributes=attributes,
        source=source,
        only=only,
    )


_INSERT_EVENTS = """
INSERT INTO events (workspace_id, user_id, name, ts, properties, message_id)
SELECT %(ws)s, user_id, name, ts, properties, message_id FROM staged_events
ON CONFLICT DO NOTHING
"""

_TOUCH_USERS = """
INSERT INTO users (workspace_id, user_id, unsubscribed, attributes, updated_at, version)
SELECT %(ws)s, user_id, false, '{}', %(now)s, 1 FROM unnest(%(ids)s::text[]) AS user_id
ON CONFLICT (workspace_id, user_id) DO UPDATE SET updated_at = excluded.updated_at
"""


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


def _copy(cursor: Any, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class PostgresStore(Store):
    dialect = "postgresql"

    def _staging(self, conn: Connection) -> Any:
        cursor = _driver(conn).cursor()
        cursor.execute(_STAGING)
        return cursor

    def _upsert_users(
        self, conn: Connection, ws: int, rows: Sequence[UserRecord], now: float
    ) -> int:
        staged = []
        for r in rows:
            f = r.fields
            set_attrs = {k: v for k, v in r.attributes.items() if v is not None}
            unset = [k for k, v in r.attributes.items() if v is None]
            staged.append(
                (
                    r.user_id,
                    f.get("email"),
                    f.get("timezone"),
                    f.get("unsubscribed"),
                    f.get("created_at"),
                    f.get("last_seen_at"),
                    orjson.dumps(set_attrs).decode(),
                    unset,
                )
            )
        with self._staging(conn) as cursor:
            _copy(
                cursor,
                "staged_users",
                "user_id, email, timezone, unsubscribed, created_at, last_seen_at, attrs, unset",
                staged,
            )
            written = 0
            for gives, unsets in sorted({(row[3] is not None, bool(row[7])) for row in staged}):
                params = {"ws": ws, "now": now, "gives_unsubscribed": gives, "unsets": unsets}
                cursor.execute(_upsert_sql(gives, unsets), params)
                written += cursor.rowcount
            return written

    def _insert_events(self, conn: Connection, ws: int, rows: Sequence[EventRecord]) -> int:
        staged = [
            (r.user_id, r.name, r.ts, orjson.dumps(r.properties).decode(), r.message_id)
            for r in rows
        ]
        with self._staging(conn) as cursor:
            _copy(cursor, "staged_events", "user_id, name, ts, properties, message_id", staged)
            cursor.execute(_INSERT_EVENTS, {"ws": ws})
            return int(cursor.rowcount)

    def _touch_users(self, conn: Connection, ws: int, user_ids: Sequence[str], now: float) -> None:
        with _driver(conn).cursor() as cursor:
            cursor.execute(_TOUCH_USERS, {"ws": ws, "now": now, "ids": list(user_ids)})


# ---- file imports -------------------------------------------------------------------------
# Rows are staged while the file is checked (one INSERT … SELECT over a jsonb array per call,
# on the server's time), then each batch is upserted from the stage by shape, as above.
# Staged row: (batch, user_id, email, timezone, unsubscribed, created_at, last_seen_at,
# attributes without nulls, the whole attribute patch when it removes some (else None)).
_IMPORT_TABLE = """
DROP TABLE IF EXISTS pg_temp.import_users;
CREATE TEMP TABLE import_users (
  batch integer, user_id varchar(255) COLLATE "C", email text, timezone text,
  unsubscribed boolean, created_at float8, last_seen_at float8, attrs jsonb, unset text[],
  PRIMARY KEY (batch, user_id));
"""
_STAGE_USERS = """
INSERT INTO import_users
SELECT (e ->> 0)::integer, e ->> 1, e ->> 2, e ->> 3, (e ->> 4)::boolean, (e ->> 5)::float8,
       (e ->> 6)::float8, e -> 7,
       CASE WHEN jsonb_typeof(e -> 8) = 'object'
            THEN ARRAY(SELECT key FROM jsonb_each(e -> 8) WHERE value = 'null') ELSE '{}' END
FROM jsonb_array_elements(%(rows)s::jsonb) AS e
"""
_STAGED_AGAIN = """
ON CONFLICT (batch, user_id) DO UPDATE SET
  (email, timezone, unsubscribed, created_at, last_seen_at, attrs, unset) =
  (excluded.email, excluded.timezone, excluded.unsubscribed, excluded.created_at,
   excluded.last_seen_at, excluded.attrs, excluded.unset)
"""


class PostgresUserImport:
    """One users import, in `lanes` connections (each user always in the same one): `stage`
    rows (from any one thread) while the file is checked, then `write` each lane's batches in
    order, each in a transaction of its own, the lanes side by side; `close` drops the stage.

    Two lanes keep two server processes busy: most of an upsert's time is the server's
    (index entries, the workspace key check), and the users of two lanes never meet."""

    lanes = 2

    def __init__(self, store: PostgresStore, ws: int, now: float) -> None:
        self.store, self.ws, self.now = store, ws, now
        self._conns: list[Connection] = []
        try:
            for _ in range(self.lanes):
                self._conns.append(store.engine.connect())
                with _driver(self._conns[-1]).transaction():
                    _driver(self._conns[-1]).execute(_IMPORT_TABLE)
        except BaseException:
            self.close()
            raise

    def stage(self, lane: int, rows: Sequence[Sequence[Any]], again: bool = False) -> None:
        """Stage rows of a lane (one per user and batch; `again`: replacing rows staged
        before), sent as one JSON array."""
        raw = _driver(self._conns[lane])
        with raw.transaction():
            sql = _STAGE_USERS + _STAGED_AGAIN if again else _STAGE_USERS
            raw.execute(sql, {"rows": orjson.dumps(rows).decode()})

    def write(
        self,
        lane: int,
        batch: int,
        size: int,
        shapes: Iterable[tuple[bool, bool]],
        new_types: Mapping[str, AttrType],
    ) -> int:
        """Upsert a staged batch as `Store.write_users` would; returns the users written."""
        conn = self._conns[lane]
        written = 0
        with metrics.timed("store.write_users", size), conn.begin():
            self.store._register_types(conn, self.ws, new_types)
            with _driver(conn).cursor() as cursor:
                # The stage has no statistics (nor needs an ANALYZE): its key finds the batch.
                cursor.execute("SET LOCAL enable_seqscan = off")
                for gives, unsets in sorted(shapes):
                    params = {
                        "ws": self.ws,
                        "now": self.now,
                        "batch": batch,
                        "gives_unsubscribed": gives,
                        "unsets": unsets,
                    }
                    cursor.execute(_upsert_sql(gives, unsets, "import_users", True), params)
                    written += cursor.rowcount
        return written

    def close(self) -> None:
        for conn in self._conns:
            # A stage left behind (a broken connection) is dropped by the next import.
            with contextlib.suppress(Exception), _driver(conn).transaction():
                _driver(conn).execute("DROP TABLE IF EXISTS pg_temp.import_users")
            conn.close()
