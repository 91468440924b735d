"""The batches as a distributed scheduler and its workers see them (Celery on RabbitMQ,
`pipeline/executors/celery.py`): a message names a batch and nothing else, and the store
decides. A worker claims the batch its message names, if it is still to be worked; the
scheduler publishes (again) the batches a worker could claim, and reads back what each did."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, func, or_, select

from drumbeat import metrics
from drumbeat.store.batch_claims import CLAIM_BY_ID, Batch, log_dead
from drumbeat.store.batches import BatchStore
from drumbeat.store.schema import batches


class BatchQueueStore(BatchStore):
    def claim_batch_id(self, batch_id: int, lease: float, *, owner: str) -> Batch | None:
        """Lease the batch `batch_id` for `lease` real seconds under `owner`, if it is
        claimable (pending, or running with its lease run out); None if it is not (finished,
        dead, or held by a live lease). A distributed worker takes the batch its message
        names this way: the store, not the message, decides whether it is to be worked.
        Made dead instead, and None, after BATCH_ATTEMPTS claims (as `claim_batch`)."""

        def run() -> Batch | None:
            values = self.claim_values(owner, lease, batch_id=batch_id)
            with metrics.timed("store.claim_batch"):
                row = self.write_one(CLAIM_BY_ID, values)  # one statement: atomic
            if row is None:
                return None
            batch = Batch(*row[:-1])
            if row[-1] == "dead":
                log_dead(batch)
                return None
            return batch

        return self.retrying(run, f"claiming batch {batch_id}")

    def claimable_batch_ids(self, lane: str, limit: int) -> list[int]:
        """The ids of `lane`'s batches a worker could claim now (pending, or running with
        their lease run out), oldest first, at most `limit`: what a distributed scheduler
        publishes (again). Reads the status index."""
        b = batches.c
        now = self.real_clock()
        claimable = or_(b.status == "pending", and_(b.status == "running", b.lease_until < now))
        query = select(b.id).where(b.lane == lane, claimable).order_by(b.id).limit(limit)
        with self.engine.connect() as conn:
            return [int(i) for i in conn.execute(query).scalars()]

    def unfinished_batches(self, lane: str) -> int:
        """How many of `lane`'s batches are pending or running."""
        b = batches.c
        query = select(func.count()).where(b.lane == lane, b.status.in_(("pending", "running")))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def batch_reports(self, ids: Collection[int]) -> list[dict[str, Any]]:
        """What the finished batches among `ids` did, as their workers wrote it
        (`finish_batch`): id, users, changed, entered, messages."""
        b = batches.c
        query = select(b.id, b.user_ids, b.changed, b.entered, b.messages).where(
            b.id.in_(sorted(ids)), b.status.in_(("done", "skipped"))
        )
        with self.engine.connect() as conn:
            return [
                {
                    "batch_id": int(row.id),
                    "users": len(row.user_ids),
                    "changed": row.changed or 0,
                    "entered": row.entered or 0,
                    "messages": row.messages or 0,
                }
                for row in conn.execute(query)
            ]
