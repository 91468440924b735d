"""Claiming batches and finishing them: a claim is atomic, a batch goes to one worker at a
time under its owner's name with a lease (real time) and a fence, and its finish counts only
if the claim still holds. The claim's statements are built once (`claim_statement`), their
values bound when one runs (`claim_values`): the hot path of every worker."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    true,
    update,
)

from drumbeat import metrics
from drumbeat.store.core import StoreCore
from drumbeat.store.owners import claim_owner
from drumbeat.store.schema import batches

log = logging.getLogger(__name__)
BATCH_ATTEMPTS = 3  # claims a batch gets; one whose holders die every time then ends dead

# A claim's values, bound when it runs (`claim_values`), so that its statements are built
# once, not for every batch (building one cost more Python than the rest of a claim).
OWNER = bindparam("claim_owner", type_=String)
NOW = bindparam("claim_now", type_=Float)
LEASE_UNTIL = bindparam("claim_lease_until", type_=Float)
LANE = bindparam("claim_lane", type_=String)
BATCH_ID = bindparam("claim_batch_id", type_=Integer)


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
    owner: str | None  # the claim's holder (none once dead): with the fence, what a finish checks


class BatchClaims(StoreCore):
    _lane_claim: Any = None  # the claim of a lane's next batch, built at the first claim

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
        """Claim one batch, the first by turn (round-robin across workspaces and campaigns:
        pipeline/governor.py), then by id; one whose lease ran out BATCH_ATTEMPTS times is
        made dead on the way (its holders all died or stalled on it) and the next one is
        claimed."""
        if self._lane_claim is None:
            self._lane_claim = claim_statement(self._pick())
        values = self.claim_values(owner, lease, lane=lane)
        with metrics.timed("store.claim_batch"):
            while (row := conn.execute(self._lane_claim, values).first()) is not None:
                if row.status != "dead":
                    break
                log_dead(row)
        return Batch(*row[:-1]) if row is not None else None

    def _pick(self, *also: Any) -> Any:
        """The claim's condition: the id of the first claimable batch of the lane by turn,
        then id (and `also` true of it), passing over one another claim holds on
        PostgreSQL."""
        b = batches.c
        pick = select(b.id).where(b.lane == LANE, claimable(OWNER, NOW), *also)
        pick = pick.order_by(b.turn, b.id).limit(1)
        if self.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        return b.id == pick.scalar_subquery()

    def claim_values(self, owner: str, lease: float, **also: Any) -> dict[str, Any]:
        """The values a claim statement is run with: `owner`'s lease from now (real time),
        and the lane or batch id `also` names."""
        now = self.real_clock()
        values = {"claim_owner": owner, "claim_now": now, "claim_lease_until": now + lease}
        return values | {f"claim_{name}": value for name, value in also.items()}

    def finish_batch(
        self,
        conn: Connection,
        batch: Batch,
        now: float,
        seconds: float,
        status: str = "done",
        *,
        report: Mapping[str, int] | None = None,
        lane: str | None = None,
        lease: float = 0.0,
        owner: str | None = None,
    ) -> tuple[bool, Batch | None]:
        """Mark the batch finished if this worker still holds it (same fence), with what it
        did (`report`: changed, entered, messages), and if it finished, claim the next batch
        of `lane` (if given: `claim_batch`) in `conn`'s transaction. Returns whether it
        finished (if not, the caller must roll back: another worker owns the batch now) and
        the batch claimed. On PostgreSQL one statement (one round trip a batch, not two):
        the claim reads the finish's result, so it claims nothing when the batch was not
        finished, and never the batch it finishes."""
        owner = owner or claim_owner()
        finish = _finish_statement(batch, now, seconds, status, report)
        if lane is None or self.dialect != "postgresql":
            if conn.execute(finish).rowcount != 1:
                return False, None
            return True, None if lane is None else self._claim_batch(conn, lane, lease, owner)
        b = batches.c
        finished = finish.returning(b.id).cte("finished")
        pick = self._pick(b.id != batch.id, exists(select(finished.c.id)))
        claimed = claim_statement(pick).cte("claimed")
        both = select(finished.c.id.label("finished"), *claimed.c)
        values = self.claim_values(owner, lease, lane=lane)
        with metrics.timed("store.claim_batch"):
            row = conn.execute(
                both.select_from(finished.outerjoin(claimed, true())), values
            ).first()
        if row is None:
            return False, None
        if row.id is None:
            return True, None
        if row.status == "dead":  # worn out: the next one is claimed
            log_dead(row)
            return True, self._claim_batch(conn, lane, lease, owner)
        return True, Batch(*row[1:-1])


def _finish_statement(
    batch: Batch, now: float, seconds: float, status: str, report: Mapping[str, int] | None
) -> Any:
    """The update that finishes the batch if its claim still holds: its fence and its owner.
    The owner too, because a claim may be lost after it answered (PostgreSQL commits a
    claim by id without waiting for the WAL flush: `BatchQueueStore.claim_batch_id`); the next
    claim then hands out the same fence number again, to another owner."""
    b = batches.c
    values = {"status": status, "finished_at": now, "seconds": seconds, "lease_until": None}
    return (
        update(batches)
        .where(b.id == batch.id, b.fence == batch.fence, b.owner == batch.owner)
        .values(**values, **(report or {}))
    )


def claimable(owner: Any, now: Any) -> Any:
    """A batch a claim under `owner` may take: pending, or running with its lease run out
    (or under `owner` itself: a claim tried again after its answer was lost)."""
    b = batches.c
    mine = func.coalesce(b.owner, "") == owner
    return or_(b.status == "pending", and_(b.status == "running", or_(b.lease_until < now, mine)))


def claim_statement(where: Any) -> Any:
    """The update that claims the batch `where` picks (or makes it dead, when worn), with
    the values `claim_values` binds."""
    b = batches.c
    mine = func.coalesce(b.owner, "") == OWNER
    worn = and_(b.attempts >= BATCH_ATTEMPTS, ~mine)
    return (
        update(batches)
        .where(where)
        .values(
            status=case((worn, "dead"), else_="running"),
            lease_until=case((worn, None), else_=LEASE_UNTIL),
            owner=case((worn, None), else_=OWNER),
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
            b.owner,
            b.status,
        )
    )


# A batch claimed by id (a distributed worker takes the batch its message names).
CLAIM_BY_ID = claim_statement(and_(batches.c.id == BATCH_ID, claimable(OWNER, NOW)))


def log_dead(row: Any) -> None:
    log.warning("batch %s is dead: claimed %s times, never finished", row.id, row.attempts)
