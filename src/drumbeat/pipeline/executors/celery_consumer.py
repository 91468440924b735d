"""The Celery consumer of `drumbeat worker`: Celery's own, without native delayed delivery
(the ETA exchanges and 28 queues Celery sets up beside quorum queues). Drumbeat publishes no
ETA or countdown task: times live in the store, and the scheduler publishes what is due."""

from __future__ import annotations

from typing import ClassVar

from celery.worker.consumer import Consumer


class PromptConsumer(Consumer):  # type: ignore[misc]
    class Blueprint(Consumer.Blueprint):  # type: ignore[misc]
        default_steps: ClassVar[list[str]] = [
            step
            for step in Consumer.Blueprint.default_steps
            if not step.endswith("DelayedDelivery")
        ]
