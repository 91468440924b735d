"""The outbox: one row per message, unique by dedupe key. Claims are atomic: a row goes to
one worker at a time, and comes back when its lease runs out. A row is due by the store's
clock (`available_at`); its lease and its retry time count real time (`lease_until`,
`retry_at`), which the caller passes as `real_now`. Here: queueing messages (with the
users' send lock and their recent sends: the frequency cap) and what operators list and put
back; a claim is outbox_claims.py's, a claimed row's lease and result sends.py's."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import ExitStack
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from drumbeat import metrics
from drumbeat.engine.member import OutMessage
from drumbeat.store.core import JsonRows
from drumbeat.store.dead import DeadRows, retry_dead
from drumbeat.store.outbox_claims import OutboxClaims
from drumbeat.store.schema import outbox
from drumbeat.store.sends import OutboxSends

_INSERT_MESSAGES = """
INSERT INTO outbox (workspace_id, dedupe_key, campaign_key, step_id, user_id, entry_count,
                    channel, payload, status, attempts, available_at, created_at)
{rows}
ON CONFLICT DO NOTHING
"""
_MESSAGES_SQLITE = _INSERT_MESSAGES.format(
    rows="VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
)
_MESSAGES_PG = JsonRows(
    _INSERT_MESSAGES.format(
        rows="SELECT w, d, k, s, u, e, c, p::jsonb, 'pending', 0, a, t FROM ROWS"
    ),
    (
        ("w", "int"),
        ("d", "text"),
        ("k", "text"),
        ("s", "text"),
        ("u", "text"),
        ("e", "int"),
        ("c", "text"),
        ("p", "text"),
        ("a", "float8"),
        ("t", "float8"),
    ),
)


# One advisory lock a user (a 64-bit hash of workspace and user id), in the order given.
_LOCK_USERS = """
SELECT pg_advisory_xact_lock(hashtextextended(key, 0))
FROM unnest(%s::text[]) WITH ORDINALITY AS keys(key, n) ORDER BY n
"""


class OutboxStore(OutboxSends, OutboxClaims):
    # ---- outbox -------------------------------------------------------------------------

    def insert_messages(
        self, conn: Connection, ws: int, key: str, messages: Sequence[OutMessage]
    ) -> int:
        """Queue messages; one whose dedupe key exists already is ignored (at most once)."""
        return self.insert_campaign_messages(conn, ws, [(key, m) for m in messages])

    def insert_campaign_messages(
        self, conn: Connection, ws: int, messages: Sequence[tuple[str, OutMessage]]
    ) -> int:
        """`insert_messages` of any campaigns, each message given with its campaign's key."""
        if not messages:
            return 0
        payloads: dict[int, str] = {}  # one serialisation per step, not per message
        rows = []
        for key, m in messages:
            payload = payloads.get(id(m.payload))
            if payload is None:
                payload = payloads[id(m.payload)] = orjson.dumps(m.payload).decode()
            rows.append(
                (
                    ws,
                    m.dedupe_key,
                    key,
                    m.step_id,
                    m.user_id,
                    m.entry_count,
                    m.channel,
                    payload,
                    m.created_at,
                    m.created_at,
                )
            )
        return self._write_rows(conn, _MESSAGES_SQLITE, rows, _MESSAGES_PG)

    def recent_sends(
        self, ws: int, user_ids: Sequence[str], since: float, conn: Connection | None = None
    ) -> dict[str, tuple[float, ...]]:
        """Each user's messages (all campaigns) created after `since`: the frequency cap.
        In `conn`'s transaction if given."""
        found: dict[str, list[float]] = {}
        o = outbox.c
        with metrics.timed("store.recent_sends", len(user_ids)), ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect())
            for start in range(0, len(user_ids), self.batch_size):
                part = user_ids[start : start + self.batch_size]
                query = select(o.user_id, o.created_at).where(
                    o.workspace_id == ws,
                    o.user_id.in_(part),
                    o.created_at > since,
                    o.status != "dead",
                )
                for user_id, created in conn.execute(query):
                    found.setdefault(user_id, []).append(float(created))
        return {user: tuple(sorted(times)) for user, times in found.items()}

    def lock_users(self, conn: Connection, ws: int, user_ids: Sequence[str]) -> None:
        """Hold the users' send lock until `conn`'s transaction ends, so that two batches
        queueing messages for the same user take turns (the frequency cap). PostgreSQL:
        transaction-scoped advisory locks, taken in key order (no deadlock between batches;
        nothing else takes them). SQLite: the write transaction holds the database already."""
        if self.dialect != "postgresql" or not user_ids:
            return
        keys = sorted({f"{ws}/{user_id}" for user_id in user_ids})
        conn.exec_driver_sql(_LOCK_USERS, (keys,))

    def outbox_rows(
        self,
        ws: int,
        *,
        campaign: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        ids: Collection[int] | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The workspace's messages by id (oldest first), among `ids`, from after
        `after_id` (keyset)."""
        o = outbox.c
        query = select(*_LISTED).where(o.workspace_id == ws)
        if ids is not None:
            query = query.where(o.id.in_(sorted(set(ids))))
        if campaign is not None:
            query = query.where(o.campaign_key == campaign)
        if status is not None:
            query = query.where(o.status == status)
        if user_id is not None:
            query = query.where(o.user_id == user_id)
        if after_id is not None:
            query = query.where(o.id > after_id)
        query = query.order_by(o.id).limit(limit)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def retry_messages(
        self,
        ws: int,
        ids: Collection[int] | None,
        now: float,
        *,
        campaign: str | None = None,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        """Put the workspace's dead messages `ids` (None: every one, of `campaign` if
        given) back to pending, due at `now` (the store's clock), their attempts and
        error cleared: `retry_dead` (one that is not a dead message of the workspace
        refuses them all). Returns the messages as they were."""
        back = {"status": "pending", "attempts": 0, "last_error": None, "retry_at": None}
        back |= {"available_at": now, "lease_until": None, "owner": None}
        where = [] if campaign is None else [outbox.c.campaign_key == campaign]
        return retry_dead(self, DEAD_MESSAGES, ws, ids, back, where=where, dry_run=dry_run)

    def recent_messages(self, ws: int, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The user's `limit` latest messages, newest first (the user's outbox index)."""
        o = outbox.c
        query = (
            select(*_LISTED)
            .where(o.workspace_id == ws, o.user_id == user_id)
            .order_by(o.created_at.desc(), o.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def outbox_counts(self, ws: int) -> dict[tuple[str, str, str], int]:
        """(campaign, step, status) → number of messages."""
        o = outbox.c
        query = (
            select(o.campaign_key, o.step_id, o.status, func.count())
            .where(o.workspace_id == ws)
            .group_by(o.campaign_key, o.step_id, o.status)
        )
        with self.engine.connect() as conn:
            return {(c, s, st): int(n) for c, s, st, n in conn.execute(query)}


_LISTED = (
    outbox.c.id,
    outbox.c.campaign_key,
    outbox.c.step_id,
    outbox.c.user_id,
    outbox.c.channel,
    outbox.c.status,
    outbox.c.attempts,
    outbox.c.created_at,
    outbox.c.sent_at,
    outbox.c.last_error,
)
DEAD_MESSAGES = DeadRows(outbox, _LISTED, "message", "messages")
