"""PostgreSQL bulk writes: COPY into a temporary table, then INSERT … SELECT … ON CONFLICT.

File imports (`ingest/batches.py`) write the same way, batch after batch, in two connections
side by side (`import_lanes`), each in one transaction until the whole file is known good."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection

from drumbeat.ingest.rows import row_of
from drumbeat.ingest.staging import WIDTH, Staged, stage
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.store.base import Store
from drumbeat.store.names import names_update

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staged_users (
  user_id varchar(255) COLLATE "C", email text, timezone text, unsubscribed boolean,
  created_at float8, last_seen_at float8, attrs jsonb, removes boolean, names jsonb)
  ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staged_events (
  user_id varchar(255) COLLATE "C", name text, ts float8, properties jsonb, message_id text)
  ON COMMIT DELETE ROWS;
"""
_STAGED_USERS = (
    "COPY staged_users (user_id, email, timezone, unsubscribed, created_at, last_seen_at, attrs,"
    " removes, names) FROM STDIN"
)

# INSERT … ON CONFLICT finds each user through the primary key whatever the statistics say
# (a MERGE join can pick a scan of the whole workspace while a big import outruns ANALYZE).
# `excluded` cannot tell "unsubscribed not given" from false, nor carry the attributes to
# remove, so rows go in up to four statements by shape (most batches need one); the rows
# that remove attributes find their whole patch (nulls included) by user id in %(patches)s.
# A user changes only if a given field or the merged attributes differ: unchanged users keep
# their version and updated_at, so re-imports cost the planner nothing.
_UPSERT_USERS = """
INSERT INTO users AS u (workspace_id, user_id, email, timezone, unsubscribed, created_at,
                        last_seen_at, attributes, updated_at, version, changed_names,
                        names_after)
SELECT %(ws)s, user_id, email, timezone, coalesce(unsubscribed, false), created_at,
       last_seen_at, attrs, %(now)s, 1, names, %(now)s
FROM staged_users
WHERE (unsubscribed IS NOT NULL) = %(gives_unsubscribed)s AND removes = %(removes)s
ON CONFLICT (workspace_id, user_id) DO UPDATE SET
  email = coalesce(excluded.email, u.email), timezone = coalesce(excluded.timezone, u.timezone),
  unsubscribed = {unsubscribed}, created_at = coalesce(excluded.created_at, u.created_at),
  last_seen_at = coalesce(excluded.last_seen_at, u.last_seen_at),
  attributes = {attributes}, updated_at = %(now)s, version = u.version + 1, {names}
WHERE (coalesce(excluded.email, u.email), coalesce(excluded.timezone, u.timezone), {unsubscribed},
       coalesce(excluded.created_at, u.created_at),
       coalesce(excluded.last_seen_at, u.last_seen_at), {attributes})
  IS DISTINCT FROM (u.email, u.timezone, u.unsubscribed, u.created_at, u.last_seen_at,
                    u.attributes)
"""
_MERGED = "u.attributes || excluded.attributes"
# Stored attributes hold no nulls, so stripping them after the merge removes exactly the
# attributes the patch sets to null. The patches are read once a statement (a sub-select).
_MERGED_AND_REMOVED = (
    "jsonb_strip_nulls(u.attributes || ((SELECT %(patches)s::jsonb) -> excluded.user_id))"
)


# New users, as the upsert inserts them, whatever their shape.
_INSERT_NEW_USERS = """
INSERT INTO users (workspace_id, user_id, email, timezone, unsubscribed, created_at,
                   last_seen_at, attributes, updated_at, version, changed_names, names_after)
SELECT %(ws)s, user_id, email, timezone, coalesce(unsubscribed, false), created_at,
       last_seen_at, attrs, %(now)s, 1, names, %(now)s
FROM staged_users
"""


def _inserted(cursor: Any, ws: int, now: float) -> int | None:
    """Insert the staged users as new, in a savepoint; the users inserted, or None (and
    nothing inserted) if one was there already."""
    cursor.execute("SAVEPOINT new_users")
    try:
        cursor.execute(_INSERT_NEW_USERS, {"ws": ws, "now": now})
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT new_users")
        return None
    inserted = int(cursor.rowcount)
    cursor.execute("RELEASE SAVEPOINT new_users")
    return inserted


def _upsert_sql(gives_unsubscribed: bool, removes: bool) -> str:
    """The upsert of the staged rows of one shape."""
    return _UPSERT_USERS.format(
        unsubscribed="excluded.unsubscribed" if gives_unsubscribed else "u.unsubscribed",
        attributes=_MERGED_AND_REMOVED if removes else _MERGED,
        names=_NAMES,
    )


_NAMES = names_update(old="u.", new="excluded.changed_names", now="%(now)s", merge="{} || {}")


def _stage(cursor: Any, staged: Staged) -> None:
    """COPY staged rows into staged_users, emptying `staged.values`."""
    values = staged.values
    with cursor.copy(_STAGED_USERS) as copy:
        write = copy.write_row
        for start in range(0, len(values), WIDTH):
            write(values[start : start + WIDTH])
    values.clear()


_INSERT_EVENTS = """
INSERT INTO events (workspace_id, user_id, name, ts, properties, message_id, received_at)
SELECT %(ws)s, user_id, name, ts, properties, message_id, %(now)s FROM staged_events
ON CONFLICT DO NOTHING
"""

# A few events (an API call's) and their users go in by one statement, from one JSON
# document: one round trip, and orjson builds the parameter in microseconds (psycopg
# spent ~1 ms of CPU quoting the text arrays of 100 events). A file's batch is COPYed into
# staging first (a document of 100,000 rows costs more to build and parse than a COPY).
ONE_STATEMENT_ROWS = 1000
_ADD_EVENTS_AND_USERS = """
WITH e AS (
  SELECT * FROM json_to_recordset(%(events)s::json)
    AS e(u text, n text, t float8, p jsonb, m text)
), added AS (
  INSERT INTO events (workspace_id, user_id, name, ts, properties, message_id, received_at)
  SELECT %(ws)s, u, n, t, p, m, %(now)s FROM e
  ON CONFLICT DO NOTHING RETURNING 1
), users_added AS (
  INSERT INTO users (workspace_id, user_id, unsubscribed, attributes, updated_at, version,
                     changed_names, names_after)
  SELECT %(ws)s, u, false, '{}', %(now)s, 1, '{}', %(now)s FROM (SELECT DISTINCT u FROM e) AS named
  ORDER BY u
  ON CONFLICT DO NOTHING
)
SELECT count(*) FROM added
"""

_ADD_USERS = """
INSERT INTO users (workspace_id, user_id, unsubscribed, attributes, updated_at, version,
                   changed_names, names_after)
SELECT %(ws)s, user_id, false, '{}', %(now)s, 1, '{}', %(now)s
FROM unnest(%(ids)s::text[]) AS user_id
ON CONFLICT DO NOTHING
"""


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


def _copy(cursor: Any, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class PostgresStore(Store):
    dialect = "postgresql"
    # Most of an upsert's time is the server's (index entries): two connections keep two
    # server processes busy, and the users of two lanes never meet.
    import_lanes = 2

    def _staging(self, conn: Connection) -> Any:
        cursor = _driver(conn).cursor()
        cursor.execute(_STAGING)
        return cursor

    def _upsert_users(
        self, conn: Connection, ws: int, rows: Sequence[UserRecord], now: float
    ) -> int:
        checked = [row_of(r.user_id, r.fields, r.attributes) for r in rows]
        return self._upsert_rows(conn, ws, checked, now)

    def _upsert_rows(self, conn: Connection, ws: int, rows: list[Any], now: float) -> int:
        """Upsert checked rows (`ingest/rows.py`); returns the users written."""
        return self._upsert_staged(conn, ws, stage(rows, now), now)[0]

    def _upsert_staged(
        self, conn: Connection, ws: int, staged: Staged, now: float, *, new: bool = False
    ) -> tuple[int, bool]:
        """Upsert staged rows (`ingest/staging.py`); returns the users written, and whether
        they were all new. With `new` (likely all new users: a file into a workspace that
        had none) they are inserted plainly, without the speculative insertion of ON
        CONFLICT (a third of the server's time); if one was there after all, the insert is
        undone and they are upserted. The values are emptied once staged (a file import's
        batch need not stay in memory while the server works); they stay staged until the
        transaction ends."""
        self._require_workspace(conn, ws)
        with self._staging(conn) as cursor:
            _stage(cursor, staged)
            inserted = _inserted(cursor, ws, now) if new else None
            if inserted is not None:
                return inserted, True
            written = 0
            for gives, removes in sorted(staged.shapes):
                params = {
                    "ws": ws,
                    "now": now,
                    "gives_unsubscribed": gives,
                    "removes": removes,
                    "patches": orjson.dumps(staged.patches).decode() if removes else None,
                }
                cursor.execute(_upsert_sql(gives, removes), params)
                written += cursor.rowcount
            return written, False

    def _import_staged(
        self, conn: Connection, ws: int, staged: Staged, now: float, *, new: bool
    ) -> tuple[int, bool]:
        """A batch of a file import, in the lane's transaction (open until the whole file is
        known good): its users stay locked meanwhile. A lane that waits a minute for a user
        another writer holds gives up (the import fails, nothing of it is written): the
        other lane, done, may be what that writer waits for. Returns the users written and
        whether they were all new (`_upsert_staged`)."""
        with _driver(conn).cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '60s'")
            written = self._upsert_staged(conn, ws, staged, now, new=new)
            cursor.execute("TRUNCATE staged_users")  # the next batch's stage
        return written

    def _add_events(
        self, conn: Connection, ws: int, rows: Sequence[EventRecord], now: float
    ) -> int:
        if len(rows) > ONE_STATEMENT_ROWS:
            inserted = self._insert_events(conn, ws, rows, now)
            self._add_users(conn, ws, sorted({r.user_id for r in rows}), now)
            return inserted
        document = orjson.dumps(
            [{"u": r.user_id, "n": r.name, "t": r.ts, "p": r.properties, "m": r.message_id}
             for r in rows]
        ).decode()  # fmt: skip
        with _driver(conn).cursor() as cursor:
            cursor.execute(_ADD_EVENTS_AND_USERS, {"ws": ws, "now": now, "events": document})
            return int(cursor.fetchone()[0])

    def _insert_events(
        self, conn: Connection, ws: int, rows: Sequence[EventRecord], now: float
    ) -> int:
        staged = [
            (r.user_id, r.name, r.ts, orjson.dumps(r.properties).decode(), r.message_id)
            for r in rows
        ]
        with self._staging(conn) as cursor:
            _copy(cursor, "staged_events", "user_id, name, ts, properties, message_id", staged)
            cursor.execute(_INSERT_EVENTS, {"ws": ws, "now": now})
            return int(cursor.rowcount)

    def _add_users(self, conn: Connection, ws: int, user_ids: Sequence[str], now: float) -> None:
        with _driver(conn).cursor() as cursor:
            cursor.execute(_ADD_USERS, {"ws": ws, "now": now, "ids": list(user_ids)})
