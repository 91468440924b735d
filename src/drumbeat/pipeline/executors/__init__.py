"""Executors run the batches the planner wrote. The contract (tests/contract/test_executors.py):
`drain(lane, now)` returns once no batch of `lane` is left to claim, with a report per batch
it ran; each batch is claimed with a lease and committed under its fence, so a batch runs to
completion once however many workers there are; `close()` releases what it holds.

- `local.ThreadExecutor`: threads in this process (the embedded shape; one core).
- `processes.ProcessExecutor`: worker processes on the same store (every core).
- `celery.CeleryExecutor`: `drumbeat worker` processes on any machine, through RabbitMQ
  (the distributed shape, when DRUMBEAT_BROKER_URL is set).
"""

from __future__ import annotations

from typing import Protocol

from drumbeat.config import Settings
from drumbeat.pipeline.lane_gate import LaneGate
from drumbeat.pipeline.programs import Programs
from drumbeat.pipeline.worker import BatchReport
from drumbeat.store import Store


class Executor(Protocol):
    def drain(self, lane: str, now: float) -> list[BatchReport]: ...

    def close(self) -> None: ...


def shareable(store: Store) -> bool:
    """Whether other processes can open this store (an in-memory SQLite database cannot)."""
    url = store.engine.url
    if url.get_backend_name() != "sqlite":
        return True
    return url.database not in (None, "", ":memory:") and "mode=memory" not in str(url)


def make_executor(
    store: Store,
    programs: Programs,
    workers: int,
    settings: Settings | None = None,
    *,
    gate: LaneGate | None = None,
) -> Executor:
    """`drumbeat worker` processes through the broker if `settings` name one; else `workers`
    worker processes; in-process when 1 (on as many threads as `settings` say: one batch's
    Python runs while another's statements run on the server), or when the store is in
    memory (on `workers` threads). With a `gate` (a
    lane other than fast), they work in the background: each batch waits for the gate
    (`lane_gate.py`), and worker processes give way to other work (`child.py`)."""
    if settings is not None and settings.broker_url is not None:
        from drumbeat.pipeline.executors.celery import CeleryExecutor

        return CeleryExecutor(
            store,
            settings.broker_url,
            republish_after=settings.broker_republish_after,
            heartbeat=settings.broker_heartbeat,
        )
    if workers <= 1 or not shareable(store):
        from drumbeat.pipeline.executors.local import ThreadExecutor

        if workers <= 1 and settings is not None:
            workers = settings.threads_in_process(store.dialect)
        return ThreadExecutor(store, programs, threads=workers, gate=gate)
    from drumbeat.pipeline.executors.processes import ProcessExecutor

    url = store.engine.url.render_as_string(hide_password=False)
    return ProcessExecutor(
        url,
        processes=workers,
        batch_size=store.batch_size,
        retry_seconds=store.retry_seconds,
        gate=gate,
    )
