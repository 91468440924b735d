"""The outbox (one row per message, unique by dedupe key) and the batches table (units of
planned work with a lease and a fence). Claims are atomic: a row or batch goes to one
worker at a time, and comes back when its lease runs out."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, case, func, or_, select, update

from drumbeat import metrics
from drumbeat.engine.member import OutMessage
from drumbeat.store.core import StoreCore
from drumbeat.store.schema import batches, outbox

log = logging.getLogger(__name__)
BATCH_ATTEMPTS = 3  # claims a batch gets; one whose holders die every time then ends dead


def process_owner(pid: int) -> str:
    """The start of the owner names of the claims made by process `pid` on this host."""
    return f"{socket.gethostname()}:{pid}:"


def claim_owner() -> str:
    """A new owner name for a claim: this process's, and a token of its own, so that a
    claim tried again after a lost connection knows the batch it may have taken already."""
    return f"{process_owner(os.getpid())}{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class Batch:
    id: int
    workspace_id: int
    campaign_key: str
    lane: str
    kind: str  # enter: the users may enter; advance: members to move on
    user_ids: list[str]
    due_at: float
    fence: int
    attempts: int


@dataclass(frozen=True)
class OutboxRow:
    id: int
    workspace_id: int
    dedupe_key: str
    campaign_key: str
    step_id: str
    user_id: str
    channel: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class SendResult:
    """What happened to one claimed row: status sent, pending (retry), failed or dead."""

    id: int
    status: str
    available_at: float | None = None
    provider_id: str | None = None
    error: str | None = None


_INSERT_MESSAGES = """
INSERT INTO outbox (workspace_id, dedupe_key, campaign_key, step_id, user_id, entry_count,
                    channel, payload, status, attempts, available_at, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?::json, 'pending', 0, ?, ?)
ON CONFLICT DO NOTHING
"""


# One advisory lock a user (a 64-bit hash of workspace and user id), in the order given.
_LOCK_USERS = """
SELECT pg_advisory_xact_lock(hashtextextended(key, 0))
FROM unnest(%s::text[]) WITH ORDINALITY AS keys(key, n) ORDER BY n
"""


class OutboxStore(StoreCore):
    # ---- outbox -------------------------------------------------------------------------

    def insert_messages(
        self, conn: Connection, ws: int, key: str, messages: Sequence[OutMessage]
    ) -> int:
        """Queue messages; one whose dedupe key exists already is ignored (at most once)."""
        if not messages:
            return 0
        payloads: dict[int, str] = {}  # one serialisation per step, not per message
        rows = []
        for m in messages:
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
        return self._executemany(conn, _INSERT_MESSAGES, rows)

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

    def claim_messages(
        self, now: float, limit: int, lease: float, channel: str | None = None
    ) -> list[OutboxRow]:
        """Lease up to `limit` due rows (pending, or sending with a lapsed lease)."""
        o = outbox.c
        due = or_(
            and_(o.status == "pending", o.available_at <= now),
            and_(o.status == "sending", o.lease_until < now),
        )
        pick = select(o.id).where(due).order_by(o.available_at, o.id).limit(limit)
        if channel is not None:
            pick = pick.where(o.channel == channel)
        if self.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        claim = (
            update(outbox)
            .where(o.id.in_(pick.scalar_subquery()))
            .values(status="sending", lease_until=now + lease, attempts=o.attempts + 1)
            .returning(
                o.id,
                o.workspace_id,
                o.dedupe_key,
                o.campaign_key,
                o.step_id,
                o.user_id,
                o.channel,
                o.payload,
                o.attempts,
            )
        )
        with metrics.timed("store.claim_messages"), self.writing() as conn:
            rows = [OutboxRow(*row) for row in conn.execute(claim)]
        return sorted(rows, key=lambda r: r.id)

    def record_results(self, results: Sequence[SendResult], now: float) -> None:
        """Write each claimed row's outcome: one executemany, in one transaction."""
        if not results:
            return
        o = outbox.c
        rows = [
            {
                "row_id": r.id,
                "new_status": r.status,
                "error": (r.error or "")[:1000] or None,
                "sent": now if r.status == "sent" else None,
                "provider": r.provider_id,
                "available": r.available_at,
            }
            for r in results
        ]
        statement = (
            update(outbox)
            .where(o.id == bindparam("row_id"))
            .values(
                status=bindparam("new_status"),
                lease_until=None,
                last_error=bindparam("error"),
                sent_at=func.coalesce(bindparam("sent"), o.sent_at),
                provider_id=func.coalesce(bindparam("provider"), o.provider_id),
                available_at=func.coalesce(bindparam("available"), o.available_at),
            )
        )
        with metrics.timed("store.record_results", len(results)), self.writing() as conn:
            conn.execute(statement, rows)

    def outbox_rows(
        self,
        ws: int,
        *,
        campaign: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        o = outbox.c
        query = select(
            o.campaign_key,
            o.step_id,
            o.user_id,
            o.channel,
            o.status,
            o.attempts,
            o.created_at,
            o.sent_at,
            o.last_error,
        ).where(o.workspace_id == ws)
        if campaign is not None:
            query = query.where(o.campaign_key == campaign)
        if status is not None:
            query = query.where(o.status == status)
        query = query.order_by(o.id).limit(limit)
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

    # ---- batches ------------------------------------------------------------------------

    def create_batches(
        self,
        conn: Connection,
        ws: int,
        key: str,
        lane: str,
        kind: str,
        parts: Sequence[Sequence[str]],
        due_at: float,
        now: float,
    ) -> int:
        rows = [
            {
                "workspace_id": ws,
                "campaign_key": key,
                "lane": lane,
                "kind": kind,
                "user_ids": list(part),
                "status": "pending",
                "due_at": due_at,
                "fence": 0,
                "attempts": 0,
                "created_at": now,
            }
            for part in parts
            if part
        ]
        if rows:
            conn.execute(batches.insert(), rows)
        return len(rows)

    def claim_batch(
        self, lane: str, lease: float, conn: Connection | None = None, *, owner: str | None = None
    ) -> Batch | None:
        """Lease the oldest claimable batch of `lane` for `lease` real seconds, under the name
        `owner` (`claim_owner()`); the fence moves on with every claim. In `conn`'s
        transaction if given (a worker claims its next batch in the transaction that finishes
        the last: one write lock taken a batch, not two), else in its own, tried again if the
        connection is lost. A batch still running under `owner` is claimable by it: a claim
        that committed before its answer was lost is taken up by the claim tried again."""
        owner = owner or claim_owner()
        if conn is not None:
            return self._claim_batch(conn, lane, lease, owner)

        def claim() -> Batch | None:
            with self.writing() as own:
                return self._claim_batch(own, lane, lease, owner)

        return self.retrying(claim, f"claiming a batch of {lane}")

    def _claim_batch(self, conn: Connection, lane: str, lease: float, owner: str) -> Batch | None:
        """Claim one batch; one whose lease ran out BATCH_ATTEMPTS times is made dead on the
        way (its holders all died or stalled on it) and the next one is claimed."""
        b = batches.c
        now = self.real_clock()
        mine = func.coalesce(b.owner, "") == owner
        claimable = or_(
            b.status == "pending", and_(b.status == "running", or_(b.lease_until < now, mine))
        )
        pick = select(b.id).where(b.lane == lane, claimable).order_by(b.id).limit(1)
        if self.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        worn = and_(b.attempts >= BATCH_ATTEMPTS, ~mine)
        claim = (
            update(batches)
            .where(b.id == pick.scalar_subquery())
            .values(
                status=case((worn, "dead"), else_="running"),
                lease_until=case((worn, None), else_=now + lease),
                owner=case((worn, None), else_=owner),
                fence=b.fence + 1,
                attempts=b.attempts + case((or_(worn, mine), 0), else_=1),
                last_error=case(
                    (worn, func.coalesce(b.last_error, "its lease ran out")), else_=b.last_error
                ),
            )
            .returning(
                b.id,
                b.workspace_id,
                b.campaign_key,
                b.lane,
                b.kind,
                b.user_ids,
                b.due_at,
                b.fence,
                b.attempts,
                b.status,
            )
        )
        with metrics.timed("store.claim_batch"):
            while (row := conn.execute(claim).first()) is not None and row.status == "dead":
                log.warning(
                    "batch %s is dead: claimed %s times, never finished", row.id, row.attempts
                )
        return Batch(*row[:-1]) if row is not None else None

    def release_batches(self, holder: str, error: str) -> dict[int, str]:
        """Let go at once of the batches held by workers known to be gone: those whose owner
        starts with `holder` (`process_owner(pid)`: a worker process that died). Each goes
        back to pending, or is dead if it has had BATCH_ATTEMPTS claims (a batch that kills
        every worker that takes it). Returns each batch's new status."""
        b = batches.c
        worn = b.attempts >= BATCH_ATTEMPTS
        release = (
            update(batches)
            .where(b.status == "running", b.owner.startswith(holder, autoescape=True))
            .values(
                status=case((worn, "dead"), else_="pending"),
                lease_until=None,
                owner=None,
                last_error=error[:1000],
            )
            .returning(b.id, b.status)
        )

        def run() -> dict[int, str]:
            with self.writing() as conn:
                return {int(batch_id): str(status) for batch_id, status in conn.execute(release)}

        return self.retrying(run, "releasing the batches of a dead worker")

    def finish_batch(
        self, conn: Connection, batch: Batch, now: float, seconds: float, status: str = "done"
    ) -> bool:
        """Mark the batch finished if this worker still holds it (same fence); else False
        and the caller must roll back: another worker owns the batch now."""
        b = batches.c
        done = conn.execute(
            update(batches)
            .where(b.id == batch.id, b.fence == batch.fence)
            .values(status=status, finished_at=now, seconds=seconds, lease_until=None)
        )
        return bool(done.rowcount == 1)

    def busy_users(self, ws: int, key: str) -> set[str]:
        """The users of the campaign's unfinished (pending or running) batches, in one
        query: they will be worked, from the state they have then. (A change a running
        batch read too early is seen at the member's next due time or the weekly full pass;
        a second batch would race it.)"""
        b = batches.c
        query = select(b.user_ids).where(
            b.workspace_id == ws, b.campaign_key == key, b.status.in_(("pending", "running"))
        )
        busy: set[str] = set()
        with metrics.timed("store.busy_users"), self.engine.connect() as conn:
            for user_ids in conn.execute(query).scalars():
                busy.update(user_ids)
        return busy

    def batch_counts(self) -> Mapping[str, int]:
        query = select(batches.c.status, func.count()).group_by(batches.c.status)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query)}
