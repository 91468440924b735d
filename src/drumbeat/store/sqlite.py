"""SQLite bulk writes: executemany of one upsert statement, numbered parameters reused."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import Connection

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
