"""The batches table: units of planned work with a lease and a fence. A claim is atomic: a
batch goes to one worker at a time, under its owner's name, and comes back when its lease
(real time) runs out, or at once when its worker is known gone."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, func, or_, select, update

from drumbeat import metrics
from drumbeat.store.core import StoreCore
from drumbeat.store.owners import claim_owner, gone_processes, host_owner, process_owner
from drumbeat.store.schema import batches

log = logging.getLogger(__name__)
BATCH_ATTEMPTS = 3  # claims a batch gets; one whose holders die every time then ends dead


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


class BatchStore(StoreCore):
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

    def release_orphaned_batches(self) -> dict[int, str]:
        """Let go of the running batches whose worker process, on this host, is gone (a run
        killed whole, say), rather than wait out their lease: minutes of real time, in which
        their users are planned nowhere else. Only processes of this host can be known
        gone; a pid taken again since by another process just leaves the lease to run out."""
        b = batches.c
        here = host_owner()
        holders = select(b.owner).distinct().where(b.status == "running", b.owner.startswith(here))

        def gone() -> set[int]:
            with self.engine.connect() as conn:
                owners = conn.execute(holders).scalars().all()
            return gone_processes(owners)

        released: dict[int, str] = {}
        for pid in self.retrying(gone, "looking for batches of gone workers"):
            released |= self.release_batches(process_owner(pid), f"worker process {pid} is gone")
        return released

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
