"""The distributed executor: batches worked by `drumbeat worker` processes (Celery workers,
any number, on any machine) fed through RabbitMQ (`celery_app.py`).

A message names a batch and nothing else; the batches table is the truth, not the queue.
`publish(lane)` sends a message for each batch a worker could claim (pending, or running
with its lease run out) that was not published within `republish_after` seconds: a batch
whose message was lost (a purged queue, a dead-lettered message) or whose worker died is
published again, so a lost queue only delays work. A batch published twice is worked once:
the worker claims it by id (lease + fence), and a message whose batch is finished or held
is acked and skipped. `drain(lane, now)` publishes until the lane has no unfinished batch
and reads back from the store what each batch it published did.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from drumbeat.pipeline.executors.celery_app import (
    BATCH_TASK,
    DISPATCH_LANE,
    DISPATCH_TASK,
    EXCHANGE,
    celery_app,
    declare,
    queue_name,
    queues,
)
from drumbeat.pipeline.executors.confirms import ConfirmedPublisher, NotConfirmed
from drumbeat.pipeline.worker import BatchReport
from drumbeat.store import Store

log = logging.getLogger(__name__)
PUBLISH_LIMIT = 10_000  # batches published per lane and pass at most (the rest: next pass)
POLL_SECONDS = 0.1  # how often a drain looks whether its lane is done


class CeleryExecutor:
    """Publishes batch ids to the lanes' queues on `broker_url`."""

    def __init__(
        self, store: Store, broker_url: str, *, republish_after: float, heartbeat: int
    ) -> None:
        self.store = store
        self.app = celery_app(broker_url)
        self.republish_after = republish_after
        # per lane, batch id → when (monotonic) it was last published
        self._published: dict[str, dict[int, float]] = {}
        self._declared = False
        # the rounds of publishes on a connection of the executor's own, closed with it
        # (`confirms.py`): not Celery's producer pool, which is kombu's, global to the
        # process, and keeps its connections open after the app is closed
        self._publisher = ConfirmedPublisher(self.app, heartbeat=heartbeat)
        with self.app.connection_for_write() as conn:  # what a lost or refused broker raises
            self.broker_errors: tuple[type[BaseException], ...] = (
                *conn.connection_errors,
                *conn.channel_errors,
                NotConfirmed,
                OSError,
            )

    def publish(self, lane: str) -> list[int]:
        """Publish the claimable batches of `lane` not published in the last
        `republish_after` seconds (those of workers gone from this host first let go of);
        returns their ids."""
        self.store.release_orphaned_batches()
        claimable = self.store.claimable_batch_ids(lane, PUBLISH_LIMIT)
        now = time.monotonic()
        # a batch claimed since is forgotten: if its lease runs out, it is published at once
        published = self._published.get(lane, {})
        earlier = {i: published[i] for i in claimable if i in published}
        due = [i for i in claimable if now - earlier.get(i, -math.inf) >= self.republish_after]
        self._send(BATCH_TASK, lane, ([i] for i in due))
        self._published[lane] = earlier | dict.fromkeys(due, now)
        return due

    def publish_dispatch(self) -> None:
        """A message to the dispatch lane for each of its consumers beyond those already
        waiting there, and one if it has none: every idle dispatch worker starts sending at
        this tick, not one more worker a tick; dispatch workers stopped for an hour find
        one message, not hundreds."""
        ready, consumers = self._counts(DISPATCH_LANE)
        self._send(DISPATCH_TASK, DISPATCH_LANE, [[]] * (max(1, consumers) - ready))

    def waiting(self, lane: str) -> int:
        """Messages ready in `lane`'s queue, not yet delivered to a worker."""
        return self._counts(lane)[0]

    def consumers(self, lane: str) -> int:
        """Consumers of `lane`'s queue: a worker each (whatever its `--concurrency`)."""
        return self._counts(lane)[1]

    def _counts(self, lane: str) -> tuple[int, int]:
        self._declare_once()
        queue = next(q for q in queues() if q.name == queue_name(lane))
        with self.app.connection_for_write() as conn:
            declared = queue.bind(conn.default_channel).queue_declare(passive=True)
        return int(declared.message_count), int(declared.consumer_count)

    def _declare_once(self) -> None:
        if not self._declared:
            declare(self.app)
            self._declared = True

    def _send(self, task: str, lane: str, messages: Iterable[list[int]]) -> None:
        """Publish the messages to `lane`'s queue, confirmed together (`confirms.py`)."""
        self._declare_once()
        route = {"exchange": EXCHANGE, "routing_key": queue_name(lane)}
        self._publisher.send(task, list(messages), **route)

    def drain(self, lane: str, now: float) -> list[BatchReport]:
        """Publish `lane`'s batches until none is pending or running; what each did. `now`
        is each batch's own time (`due_at`, the time it was planned for)."""
        published: set[int] = set()
        while True:
            try:
                published.update(self.publish(lane))
            except self.broker_errors as exc:  # published again at the next pass
                log.warning("publishing to %s stopped (%s); trying again", lane, exc)
            if not self.store.unfinished_batches(lane):
                break
            time.sleep(POLL_SECONDS)
        return [BatchReport(**row) for row in self.store.batch_reports(published)]

    def close(self) -> None:
        self._publisher.close()
        self.app.close()
