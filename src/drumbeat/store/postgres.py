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
  user_id text, email text, timezone text, unsubscribed boolean, created_at float8,
  last_seen_at float8, attrs jsonb, unset text[]) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staged_events (
  user_id text, name text, ts float8, properties jsonb, message_id text) ON COMMIT DELETE ROWS;
"""

# A user changes only if a given field or the merged attributes differ: unchanged users keep
# their version and updated_at, so re-imports cost the planner nothing.
_MERGE_USERS = """
MERGE INTO users u
USING staged_users s ON u.workspace_id = %(ws)s AND u.user_id = s.user_id
WHEN MATCHED AND (
    coalesce(s.email, u.email), coalesce(s.timezone, u.timezone),
    coalesce(s.unsubscribed, u.unsubscribed), coalesce(s.created_at, u.created_at),
    coalesce(s.last_seen_at, u.last_seen_at), (u.attributes - s.unset) || s.attrs
  ) IS DISTINCT FROM (u.email, u.timezone, u.unsubscribed, u.created_at, u.last_seen_at,
                      u.attributes)
  THEN UPDATE SET
    email = coalesce(s.email, u.email), timezone = coalesce(s.timezone, u.timezone),
    unsubscribed = coalesce(s.unsubscribed, u.unsubscribed),
    created_at = coalesce(s.created_at, u.created_at),
    last_seen_at = coalesce(s.last_seen_at, u.last_seen_at),
    attributes = (u.attributes - s.unset) || s.attrs,
    updated_at = %(now)s, version = u.version + 1
WHEN NOT MATCHED THEN
  INSERT (workspace_id, user_id, email, timezone, unsubscribed, created_at, last_seen_at,
          attributes, updated_at, version)
  VALUES (%(ws)s, s.user_id, s.email, s.timezone, coalesce(s.unsubscribed, false), s.created_at,
          s.last_seen_at, s.attrs, %(now)s, 1)
"""

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
            cursor.execute("ANALYZE staged_users")
            cursor.execute(_MERGE_USERS, {"ws": ws, "now": now})
            return int(cursor.rowcount)

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
