"""The batches table: units of planned work with a lease and a fence. A claim is atomic: a
batch goes to one worker at a time, under its owner's name, and comes back when its lease
(real time) runs out, or at once when its worker is known gone (`release_batches`). The
claim and the finish are batch_claims.py's; here, the rest: writing batches (the planner),
letting go of those of gone workers, what the planner and operators read of them, and
putting dead ones back."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, case, func, select, update

from drumbeat import metrics
from drumbeat.store.batch_claims import BATCH_ATTEMPTS, BatchClaims
from drumbeat.store.dead import DeadRows, retry_dead
from drumbeat.store.event_path import lock_campaigns
from drumbeat.store.owners import gone_processes, host_owner, process_owner
from drumbeat.store.schema import batches


class BatchStore(BatchClaims):
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
        *,
        first_turn: float = 0.0,
        turn_step: float = 1.0,
    ) -> int:
        """Write the `parts` as pending batches, the i-th claimed in turn
        `first_turn + i * turn_step` (claims go by turn, then id: `_claim_batch`), holding
        the campaign's planning lock (`lock_campaigns`) until `conn` commits: the one-user
        event path, which takes it too, either sees them (and leaves their users to them) or
        finishes before any of them is worked."""
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
                "turn": first_turn + i * turn_step,
            }
            for i, part in enumerate(p for p in parts if p)
        ]
        if rows:
            lock_campaigns(conn, ws, [key])
            conn.execute(batches.insert(), rows)
        return len(rows)

    def release_batches(self, holder: str, error: str, *, counted: bool = True) -> dict[int, str]:
        """Let go at once of the batches held by workers known to be gone: those whose owner
        starts with `holder` (`process_owner(pid)`: a worker process that died). Each goes
        back to pending, or is dead if it has had BATCH_ATTEMPTS claims (a batch that kills
        every worker that takes it). Not `counted`: the claim is given back, since the
        process was killed from outside (a whole run killed), which says nothing of the
        batch. Returns each batch's new status."""
        b = batches.c
        worn = b.attempts >= BATCH_ATTEMPTS
        release = (
            update(batches)
            .where(b.status == "running", b.owner.startswith(holder, autoescape=True))
            .values(
                status=case((worn, "dead"), else_="pending") if counted else "pending",
                attempts=b.attempts if counted else case((b.attempts > 0, b.attempts - 1), else_=0),
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
        their users are planned nowhere else. The claim does not count towards the batch's
        death: its process went with the run, not because of the batch (a run killed three
        times would otherwise leave dead batches behind). Only processes of this host can be
        known gone; a pid taken again since by another process leaves the lease to run out."""
        b = batches.c
        here = host_owner()
        holders = select(b.owner).distinct().where(b.status == "running", b.owner.startswith(here))

        def gone() -> set[int]:
            with self.engine.connect() as conn:
                owners = conn.execute(holders).scalars().all()
            return gone_processes(owners)

        released: dict[int, str] = {}
        for pid in self.retrying(gone, "looking for batches of gone workers"):
            released |= self.release_batches(
                process_owner(pid), f"worker process {pid} is gone", counted=False
            )
        return released

    def busy_users(self, ws: int, key: str) -> set[str]:
        """The users of the campaign's unfinished (pending or running) batches, in one
        query: they will be worked, from the state they have then. (A change a running
        batch read too early is seen at the member's next due time or the weekly full pass;
        a second batch would race it.) And those of its dead batches, until an operator
        retries them: planned again, a user who kills every worker would kill 3 a tick."""
        b = batches.c
        query = select(b.user_ids).where(
            b.workspace_id == ws,
            b.campaign_key == key,
            b.status.in_(("pending", "running", "dead")),
        )
        busy: set[str] = set()
        with metrics.timed("store.busy_users"), self.engine.connect() as conn:
            for user_ids in conn.execute(query).scalars():
                busy.update(user_ids)
        return busy

    def batch_counts(self, ws: int) -> Mapping[str, int]:
        """The workspace's batches by status."""
        b = batches.c
        query = select(b.status, func.count()).where(b.workspace_id == ws).group_by(b.status)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def lane_depths(self, ws: int) -> dict[str, tuple[int, int, float | None]]:
        """Per lane, the workspace's pending and running batches and when the oldest
        pending one was made (None: none waits), in one query."""
        b = batches.c
        waiting = case((b.status == "pending", 1), else_=0)
        query = (
            select(
                b.lane,
                func.sum(waiting),
                func.sum(case((b.status == "running", 1), else_=0)),
                func.min(case((b.status == "pending", b.created_at), else_=None)),
            )
            .where(b.workspace_id == ws, b.status.in_(("pending", "running")))
            .group_by(b.lane)
            .order_by(b.lane)
        )
        with self.engine.connect() as conn:
            return {
                str(lane): (int(pending), int(running), None if oldest is None else float(oldest))
                for lane, pending, running, oldest in conn.execute(query)
            }

    def batch_rows(
        self,
        ws: int,
        *,
        status: str | None = None,
        campaign: str | None = None,
        ids: Collection[int] | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The workspace's batches, oldest first: of one status, of one campaign, among
        `ids`, from after `after_id` (keyset)."""
        b = batches.c
        query = select(*_LISTED).where(b.workspace_id == ws)
        if status is not None:
            query = query.where(b.status == status)
        if campaign is not None:
            query = query.where(b.campaign_key == campaign)
        if ids is not None:
            query = query.where(b.id.in_(sorted(set(ids))))
        if after_id is not None:
            query = query.where(b.id > after_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(b.id).limit(limit))]

    def retry_batches(
        self, ws: int, ids: Collection[int] | None, *, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Put the workspace's dead batches `ids` (None: every one) back to pending, their
        attempts reset, their last_error kept until a worker overwrites it: `retry_dead`
        (one that is not a dead batch of the workspace refuses them all). Returns the
        batches as they were."""
        back = {"status": "pending", "attempts": 0, "lease_until": None, "owner": None}
        return retry_dead(self, DEAD_BATCHES, ws, ids, back, dry_run=dry_run)


_LISTED = (
    batches.c.id,
    batches.c.campaign_key,
    batches.c.lane,
    batches.c.kind,
    batches.c.user_ids,
    batches.c.status,
    batches.c.attempts,
    batches.c.created_at,
    batches.c.last_error,
)


DEAD_BATCHES = DeadRows(batches, _LISTED, "batch", "batches")
