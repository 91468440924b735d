"""What the one-user event path (`pipeline/events.py`) reads and locks in its transaction:
the active campaigns' fingerprint, the campaign locks it shares with the planner's batches,
the users an unfinished batch holds, and the users' memberships of several campaigns at once.

The planner and the event path never both act on one membership. On SQLite every write
transaction holds the database. On PostgreSQL both take the campaigns' advisory locks in
the transaction that decides (the event path) or that writes a campaign's batches
(`BatchStore.create_batches`): a batch is either written before the event path looks (and
then holds its users, which the event path leaves to it) or after the event path commits
(and then is worked from the state it left)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection

from drumbeat.engine.member import Member
from drumbeat.store.core import StoreCore
from drumbeat.store.memberships import MEMBER_COLUMNS, member_from_row

HOLDING = ("pending", "running", "dead")  # as `BatchStore.busy_users`

_FINGERPRINT = """
SELECT c.key, c.version,
    (SELECT count(*) FROM attribute_types t WHERE t.workspace_id = ?),
    (SELECT s.value FROM settings s WHERE s.workspace_id = ? AND s.name = 'frequency_cap')
FROM campaigns c WHERE c.workspace_id = ? AND c.status = 'active' ORDER BY c.key
"""

# One advisory lock a campaign (a 64-bit hash of its workspace and key), in the order given.
_LOCK_CAMPAIGNS = """
SELECT pg_advisory_xact_lock(hashtextextended(key, 0))
FROM unnest(%s::text[]) WITH ORDINALITY AS keys(key, n) ORDER BY n
"""

_HELD_SQLITE = """
SELECT DISTINCT b.campaign_key, j.value FROM batches b, json_each(b.user_ids) j
WHERE b.workspace_id = ? AND b.status IN ('pending', 'running', 'dead')
  AND b.campaign_key IN (SELECT value FROM json_each(?))
  AND j.value IN (SELECT value FROM json_each(?))
"""

_HELD_POSTGRES = """
SELECT DISTINCT b.campaign_key, u.id FROM batches b, unnest(%s::text[]) AS u(id)
WHERE b.workspace_id = %s AND b.status IN ('pending', 'running', 'dead')
  AND b.campaign_key = ANY(%s) AND b.user_ids @> jsonb_build_array(u.id)
"""

_MEMBERS_OF = f"""
SELECT campaign_key, {", ".join(MEMBER_COLUMNS)} FROM memberships
WHERE workspace_id = ? AND campaign_key IN_KEYS AND user_id IN_IDS
"""


def lock_campaigns(conn: Connection, ws: int, keys: Collection[str]) -> None:
    """Hold the campaigns' planning lock until `conn`'s transaction ends (PostgreSQL; on
    SQLite the write transaction holds the database already). Taken before any user's
    send lock (`OutboxStore.lock_users`), in key order: no deadlock."""
    if conn.dialect.name == "postgresql" and keys:
        names = sorted(f"campaign:{ws}/{key}" for key in set(keys))
        conn.exec_driver_sql(_LOCK_CAMPAIGNS, (names,))


class EventPathStore(StoreCore):
    def campaigns_fingerprint(self, conn: Connection, ws: int) -> tuple[Any, ...]:
        """What the workspace's compiled programs depend on, in one query: its active
        campaigns and their versions, how many attribute types it has (they are only
        added), and its frequency cap. An empty tuple: no campaign is active."""
        sql = _FINGERPRINT if self.dialect == "sqlite" else _FINGERPRINT.replace("?", "%s")
        rows = conn.exec_driver_sql(sql, (ws, ws, ws)).fetchall()
        return tuple((row[0], int(row[1]), int(row[2]), str(row[3])) for row in rows)

    def held_users(
        self, conn: Connection, ws: int, keys: Collection[str], user_ids: Sequence[str]
    ) -> set[tuple[str, str]]:
        """(campaign, user) of the given ones that an unfinished (or dead) batch holds: that
        batch decides for them. Reads the unfinished batches of these campaigns only."""
        if not keys or not user_ids:
            return set()
        if self.dialect == "postgresql":
            params: tuple[Any, ...] = (list(user_ids), ws, sorted(keys))
            rows = conn.exec_driver_sql(_HELD_POSTGRES, params)
        else:
            rows = conn.exec_driver_sql(_HELD_SQLITE, (ws, _json(keys), _json(user_ids)))
        return {(str(key), str(user)) for key, user in rows}

    def members_of(
        self, conn: Connection, ws: int, keys: Collection[str], user_ids: Sequence[str]
    ) -> dict[tuple[str, str], Member]:
        """The users' memberships of the campaigns `keys`, by (campaign, user), one query."""
        if not keys or not user_ids:
            return {}
        if self.dialect == "postgresql":
            sql = _MEMBERS_OF.replace("IN_KEYS", "= ANY(?)")
            keys_param: Any = sorted(keys)
        else:
            sql = _MEMBERS_OF.replace("IN_KEYS", "IN (SELECT value FROM json_each(?))")
            keys_param = _json(keys)
        rows = self._fetch_by_ids(conn, sql, (ws, keys_param), user_ids)
        return {(row[0], row[1]): member_from_row(row[1:]) for row in rows}


def _json(items: Collection[str]) -> str:
    return orjson.dumps(sorted(items)).decode()
