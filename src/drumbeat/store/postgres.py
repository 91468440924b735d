"""PostgreSQL bulk writes: COPY into a temporary table, then one MERGE or INSERT … SELECT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection

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
FROM staged_users
WHERE (unsubscribed IS NOT NULL) = %(gives_unsubscribed)s AND (unset <> '{{}}') = %(unsets)s
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
    "(u.attributes - (SELECT s.unset FROM staged_users s WHERE s.user_id = excluded.user_id))"
    " || excluded.attributes"
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
                sql = _UPSERT_USERS.format(
                    unsubscribed="excluded.unsubscribed" if gives else "u.unsubscribed",
                    attributes=_MERGED_AND_UNSET if unsets else _MERGED)
                params = {"ws": ws, "now": now, "gives_unsubscribed": gives, "unsets": unsets}
                cursor.execute(sql, params)
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
