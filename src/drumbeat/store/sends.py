"""A claimed outbox row while it is sent and after: its claim's lease kept (`extend_leases`),
its result recorded (`record_results`), each only while the row is still held under the
claim's fence; the rows of a gone process let go of; the next retry time. Claims are
outbox_claims.py's; queueing and the operators' reads are outbox.py's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Select, or_, select, text, tuple_, update

from drumbeat import metrics
from drumbeat.store.core import JsonRows, StoreCore, chunks
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


class OutboxSends(StoreCore):
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
