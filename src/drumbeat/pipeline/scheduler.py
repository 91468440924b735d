"""`drumbeat run --scheduler-only`: the distributed shape's scheduler. Each tick it plans
(as `drumbeat run` does), publishes the batches a worker could claim to their lanes' queues,
and one message to the dispatch lane; it works no batch and sends nothing itself: the
`drumbeat worker` processes do (docs/deploy.md)."""

from __future__ import annotations

import logging

from drumbeat.config import Settings
from drumbeat.pipeline.clock import StoreClock
from drumbeat.pipeline.executors.celery import CeleryExecutor
from drumbeat.pipeline.executors.celery_app import BATCH_LANES
from drumbeat.pipeline.runner import Runner, TickReport
from drumbeat.store import Store

log = logging.getLogger(__name__)


class Scheduler(Runner):
    """A Runner whose tick only plans and publishes (its executor is a CeleryExecutor)."""

    def __init__(self, store: Store, config: Settings, clock: StoreClock | None = None) -> None:
        super().__init__(store, config, clock)
        assert isinstance(self.executor, CeleryExecutor)  # config names a broker
        self.publisher = self.executor

    def tick(self, now: float, *, whole: bool = True, send: bool = True) -> TickReport:
        """Plan and publish (the dispatch lane's message too if `send`); `whole` means
        nothing here: the workers do the lanes."""
        report = self.plan(now)
        try:
            for lane in BATCH_LANES:
                self.publisher.publish(lane)
            if send:
                self.publisher.publish_dispatch()
        except self.publisher.broker_errors as exc:  # the store keeps what was not published
            log.warning("publishing stopped (%s); the next tick publishes again", exc)
        return report
