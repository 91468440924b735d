"""The Celery application of the distributed shape (DESIGN.md, "Distributed settings"), and
the two tasks its workers run. Imported only when DRUMBEAT_BROKER_URL is set: Celery is the
`celery` extra.

- JSON only (a message is `[batch_id]` or nothing: never pickle), no result backend (what a
  batch did is written with it in the store: `Store.batch_reports`).
- `task_acks_late` + `task_reject_on_worker_lost`: a message is acked once its task ran, and
  one whose worker died is delivered again; `worker_prefetch_multiplier=1`: a worker holds
  one message it is not working on at most.
- Publisher confirms: a publish returns once RabbitMQ has the message (a round of them
  confirmed together: `confirms.py`).
- One quorum queue per lane (`drumbeat.fast`, `drumbeat.slow`, `drumbeat.dispatch`), with a
  delivery limit: a message that killed DELIVERY_LIMIT workers goes to `drumbeat.dead`
  (the batch itself ends dead in the store after BATCH_ATTEMPTS claims).
- A task time limit below RabbitMQ's consumer timeout (30 minutes by default), and no
  ETA/countdown: times live in the store, and the scheduler publishes what is due.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drumbeat.choices import Lane
from drumbeat.errors import DrumbeatError

if TYPE_CHECKING:
    from celery import Celery
    from kombu.entity import Queue

    from drumbeat.channels.dispatcher import Dispatcher
    from drumbeat.pipeline.programs import Programs
    from drumbeat.recorder import Recorder
    from drumbeat.store import Store

log = logging.getLogger(__name__)

BATCH_LANES = (Lane.FAST.value, Lane.SLOW.value)  # the lanes batches are planned into
DISPATCH_LANE = Lane.DISPATCH.value  # sending: the Dispatcher over the due outbox rows
LANES = (*BATCH_LANES, DISPATCH_LANE)
EXCHANGE = "drumbeat"  # direct: a lane's queue is bound by its name
DEAD_QUEUE = "drumbeat.dead"
DELIVERY_LIMIT = 5  # deliveries of one message before RabbitMQ dead-letters it
TASK_TIME_LIMIT = 600.0  # seconds; RabbitMQ's consumer_timeout (default 1,800 s) is above
BATCH_TASK = "drumbeat.batch"
DISPATCH_TASK = "drumbeat.dispatch"


class CeleryMissing(DrumbeatError, RuntimeError):
    """The distributed shape was asked for without Celery installed."""


def queue_name(lane: str) -> str:
    return f"drumbeat.{lane}"


def queues() -> list[Queue]:
    """The lanes' quorum queues (each dead-letters into DEAD_QUEUE), and DEAD_QUEUE."""
    from kombu.entity import Exchange, Queue

    dead = Exchange(DEAD_QUEUE, type="direct", durable=True)
    lanes = [
        Queue(
            queue_name(lane),
            Exchange(EXCHANGE, type="direct", durable=True),
            routing_key=queue_name(lane),
            durable=True,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": DEAD_QUEUE,
                "x-dead-letter-routing-key": DEAD_QUEUE,
            },
        )
        for lane in LANES
    ]
    return [
        *lanes,
        Queue(DEAD_QUEUE, dead, routing_key=DEAD_QUEUE, queue_arguments={"x-queue-type": "quorum"}),
    ]


def celery_app(broker_url: str) -> Celery:
    """The application on `broker_url`, with Drumbeat's settings and tasks."""
    try:
        from celery import Celery
        from celery.signals import worker_process_shutdown
    except ImportError as exc:
        raise CeleryMissing(
            "DRUMBEAT_BROKER_URL needs Celery: pip install 'drumbeat[celery]'"
        ) from exc
    app = Celery("drumbeat", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"confirm_publish": True},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a RabbitMQ restart
        task_queues=queues(),
        task_create_missing_queues=False,
        task_time_limit=TASK_TIME_LIMIT,
        worker_consumer="drumbeat.pipeline.executors.celery_consumer:PromptConsumer",
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    app.task(name=BATCH_TASK, ignore_result=True)(run_batch)
    app.task(name=DISPATCH_TASK, ignore_result=True)(run_dispatch)
    worker_process_shutdown.connect(close_worker_state, weak=False, dispatch_uid=__name__)
    return app


def declare(app: Celery) -> None:
    """Declare every queue (a publish before any worker started is kept, and the dead-letter
    queue exists before a message is dead-lettered into it)."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in queues():
            queue.bind(channel).declare()


@dataclass
class WorkerState:
    """What a worker process opens once, on its first task (after the pool forked it), and
    closes when the pool lets the process go (`close_worker_state`)."""

    store: Store
    programs: Programs
    recorder: Recorder
    dispatcher: Dispatcher | None = None


_state: WorkerState | None = None


def worker_state() -> WorkerState:
    global _state
    if _state is None:
        from drumbeat.config import Settings
        from drumbeat.pipeline.programs import Programs
        from drumbeat.recorder import Recorder
        from drumbeat.store import open_configured

        settings = Settings()
        store = open_configured(settings, migrate=False)
        # its timings go to the store for `drumbeat stats`, as every working process's do
        recorder = Recorder(
            store, every=settings.stats_flush_seconds, keep=settings.stats_keep_days * 86400
        )
        _state = WorkerState(store, Programs(store), recorder)
    return _state


def close_worker_state(**_: Any) -> None:
    """On `worker_process_shutdown`: a pool's process leaves through `os._exit`, which runs
    no `atexit` hook, so its channels' connections would be dropped unclosed and its last
    timings (up to DRUMBEAT_STATS_FLUSH_SECONDS of them) lost."""
    global _state
    state, _state = _state, None
    if state is None:  # the process took no task
        return
    try:
        if state.dispatcher is not None:
            state.dispatcher.close()
    finally:
        state.recorder.close()
        state.store.close()


def run_batch(batch_id: int) -> None:
    """Claim batch `batch_id` and work it at the time it is for (`due_at`), if it is still
    to be worked; else (finished, dead, held by a live lease) skip it: the message is acked
    either way, and the store decides. A batch that fails is let go of with its error (back
    to pending, or dead after BATCH_ATTEMPTS claims) for the scheduler to publish again."""
    from drumbeat.pipeline.worker import BATCH_LEASE, LeaseLost, process_batch
    from drumbeat.store.owners import claim_owner

    state = worker_state()
    store = state.store
    owner = claim_owner()
    batch = store.claim_batch_id(int(batch_id), BATCH_LEASE, owner=owner)
    if batch is None:
        log.info("batch %s: finished or held elsewhere, skipped", batch_id)
        return
    try:
        store.retrying(state.programs.refresh, "reading the campaigns")
        process_batch(store, state.programs, batch, batch.due_at)
    except LeaseLost as exc:  # another worker took it after our lease ran out: its commit
        log.warning("%s", exc)
    except Exception as exc:
        log.exception("batch %s failed", batch_id)
        store.release_batches(owner, f"{type(exc).__name__}: {exc}")


def run_dispatch(*_: Any) -> None:
    """Send the due outbox rows (the store's clock says which are due), in claims of the
    Dispatcher's size, until none is due; first take up those a gone dispatch worker of
    this host held."""
    from drumbeat.channels.dispatcher import Dispatcher
    from drumbeat.config import Settings
    from drumbeat.pipeline.clock import store_now

    state = worker_state()
    if state.dispatcher is None:
        state.dispatcher = Dispatcher(state.store, Settings())
    # rows a killed dispatch worker of this host was sending are taken up now, not at the
    # end of their lease (a worker on another host: its lease)
    state.store.retrying(state.store.release_orphaned_messages, "releasing orphaned messages")
    report = state.dispatcher.dispatch(store_now(state.store))
    log.info("dispatched: %s", dict(report.counts))
