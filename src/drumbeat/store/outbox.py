"""The outbox: one row per message, unique by dedupe key. Claims are atomic: a row goes to
one worker at a time, and comes back when its lease runs out. A row is due by the store's
clock (`available_at`); its lease and its retry time count real time (`lease_until`,
`retry_at`), which the caller passes as `real_now`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import ExitStack
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    Select,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)

from drumbeat import metrics
from drumbeat.engine.member import OutMessage
from drumbeat.store.claims import OutboxClaims
from drumbeat.store.core import JsonRows, chunks
from drumbeat.store.dead import DeadRows, retry_dead
from drumbeat.store.owners import gone_processes, host_owner, process_owner
from drumbeat.store.schema import RETRY, outbox

_SENDING = outbox.c.status == "sending"

Claim = tuple[int, int]  # (outbox row id, fence)


class SendResult(NamedTuple):
    """What happened to one claimed row: status sent, pending (retry at `retry_at`, real
    time), failed or dead; recorded only if the row is still held under `fence`. A named
    tuple: one is made for every message sent, in a fifth of a frozen dataclass's time."""

    id: int
    fence: int
    status: str
    retry_at: float | None = None
    provider_id: str | None = None
    error: str | None = None


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


# A row its claim still holds: same fence, still sending; found by id. The status test as
# `IS TRUE`, which the planner cannot match to `ix_outbox_lease`'s predicate: that index
# keeps an entry of every row once sending until a VACUUM (with autovacuum off or behind, one
# a message sent in the run), and a bitmap scan of it read them all for each claim's results
# (30-70 ms a claim of 1,000 at 200,000 messages sent, where finding them by id takes 5 ms).
_HELD = "outbox.id = {0}.id AND outbox.fence = {0}.fence AND (outbox.status = 'sending') IS TRUE"
# Each result written only over a row its claim still holds.
_RECORD_RESULTS = JsonRows(
    """
UPDATE outbox SET status = r.status, lease_until = NULL, retry_at = r.retry_at,
    last_error = r.error, sent_at = coalesce(r.sent_at, outbox.sent_at),
    provider_id = coalesce(r.provider_id, outbox.provider_id)
FROM ROWS
WHERE """
    + _HELD.format("r"),
    (
        ("id", "bigint"),
        ("fence", "bigint"),
        ("status", "text"),
        ("retry_at", "float8"),
        ("error", "text"),
        ("sent_at", "float8"),
        ("provider_id", "text"),
    ),
)
_EXTEND_LEASES = f"""
UPDATE outbox SET lease_until = %s
FROM unnest(%b::bigint[], %b::bigint[]) AS c(id, fence)
WHERE {_HELD.format("c")}
RETURNING outbox.id
"""


# `_RECORD_RESULTS` for SQLite: one run of the prepared statement a row, its parameters
# numbered as the columns of a row of `record_results` (no per-row work in SQLAlchemy).
_RECORD_RESULT = """
UPDATE outbox SET status = ?3, lease_until = NULL, retry_at = ?4, last_error = ?5,
    sent_at = coalesce(?6, sent_at), provider_id = coalesce(?7, provider_id)
WHERE id = ?1 AND fence = ?2 AND status = 'sending'
"""


# One advisory lock a user (a 64-bit hash of workspace and user id), in the order given.
_LOCK_USERS = """
SELECT pg_advisory_xact_lock(hashtextextended(key, 0))
FROM unnest(%s::text[]) WITH ORDINALITY AS keys(key, n) ORDER BY n
"""


class OutboxStore(OutboxClaims):
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

    def release_orphaned_messages(self) -> int:
        """Let go of the rows being sent by a process of this host that is gone (a run killed
        whole) rather than wait out their lease: the next claim takes them (their fence moves
        on, so a result of the dead claim could not be recorded anyway). How many."""
        o = outbox.c
        sending = (o.status == "sending", o.owner.startswith(host_owner(), autoescape=True))
        with self.engine.connect() as conn:
            owners = conn.execute(select(o.owner).distinct().where(*sending)).scalars().all()
        gone = gone_processes(owners)
        if not gone:
            return 0
        held_by_gone = or_(*(o.owner.startswith(process_owner(pid)) for pid in sorted(gone)))
        with self.writing() as conn:
            released = conn.execute(
                update(outbox).where(*sending, held_by_gone).values(lease_until=0, owner=None)
            )
        return int(released.rowcount)

    def extend_leases(self, claims: Sequence[Claim], until: float) -> set[int]:
        """Move the lease of the rows still held under `claims` to `until` (real time), in
        one statement; the ids of those rows (a row missing was taken over by another
        claim)."""
        if not claims:
            return set()
        o = outbox.c
        with metrics.timed("store.extend_leases", len(claims)), self.writing() as conn:
            if self.dialect == "postgresql":
                ids, fences = (list(column) for column in zip(*sorted(claims), strict=True))
                return set(conn.exec_driver_sql(_EXTEND_LEASES, (until, ids, fences)).scalars())
            held: set[int] = set()
            for part in chunks(sorted(claims), self.batch_size):
                extend = update(outbox).where(_SENDING, tuple_(o.id, o.fence).in_(part))
                held.update(
                    conn.execute(extend.values(lease_until=until).returning(o.id)).scalars()
                )
            return held

    def record_results(self, results: Sequence[SendResult], now: float) -> int:
        """Write the outcome of each row its claim still holds (same fence, still sending),
        in one statement; a stale claim's results are dropped. How many were dropped."""
        if not results:
            return 0
        rows = [
            (
                r.id,
                r.fence,
                r.status,
                r.retry_at,
                (r.error or "")[:1000] or None,
                now if r.status == "sent" else None,
                r.provider_id,
            )
            for r in sorted(results, key=lambda r: r.id)
        ]
        with metrics.timed("store.record_results", len(results)), self.writing() as conn:
            if self.dialect == "postgresql":  # the rows as arrays, one round trip
                written = conn.exec_driver_sql(_RECORD_RESULTS.sql, _RECORD_RESULTS.params(rows))
            else:  # SQLite: one prepared statement, run per row in-process
                written = conn.exec_driver_sql(_RECORD_RESULT, rows)
        return len(results) - max(0, int(written.rowcount))

    def next_retry(self, now: float) -> float | None:
        """The earliest real retry time of the rows due at `now` that wait for one."""
        with self.engine.connect() as conn:
            found = conn.execute(self.next_retry_pick(now)).scalar()
        return None if found is None else float(found)

    def next_retry_pick(self, now: float) -> Select[Any]:
        """`next_retry`'s query: the first in `ix_outbox_retry`'s order, which holds only
        the rows waiting for a retry (not every pending row)."""
        o = outbox.c
        due = select(o.retry_at).where(text(RETRY), o.available_at <= now)
        return due.order_by(o.retry_at, o.id).limit(1)

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
