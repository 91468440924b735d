"""Run every claimable batch of a lane on threads in this process, until none is left.

Each thread holds one batch at a time (lease + fence), claiming the next in the transaction
that finishes the last, so a thread that dies loses nothing: its batch is claimed again once
the lease runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from drumbeat.pipeline.lane_gate import LaneGate
from drumbeat.pipeline.programs import Programs
from drumbeat.pipeline.worker import BATCH_LEASE, BatchReport, LeaseLost, process_batch
from drumbeat.store import Store

if TYPE_CHECKING:
    from drumbeat.store.batch_claims import Batch

log = logging.getLogger(__name__)


def drain(
    store: Store,
    programs: Programs,
    lane: str,
    clock: Callable[[], float],
    *,
    workers: int = 1,
    gate: LaneGate | None = None,
) -> list[BatchReport]:
    """Claim and process batches until the lane is empty; returns what each batch did.
    Batches whose worker process is gone are let go of first (`release_orphaned_batches`).
    With a `gate` (a background lane's), each batch waits for it to be open first."""
    reports: list[BatchReport] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work(first: Batch | None) -> None:
        """Work batches from `first` (None: claim one) until the lane is empty. Whatever
        a claim or a batch raises ends this thread and is raised by the drain once every
        thread has ended (a thread's own exception would only be printed)."""
        try:
            batch = first if first is not None else store.claim_batch(lane, BATCH_LEASE)
            while batch is not None:
                if gate is not None:
                    gate.wait()
                try:
                    report, batch = process_batch(store, programs, batch, clock(), claim_from=lane)
                except LeaseLost as exc:  # rolled back, the next claim with it
                    log.warning("%s", exc)
                    batch = store.claim_batch(lane, BATCH_LEASE)
                    continue
                with lock:
                    reports.append(report)
        except BaseException as exc:
            with lock:
                failures.append(exc)

    store.release_orphaned_batches()
    # One claim first: an idle lane costs one statement whatever the number of threads, and
    # the others start only when there is work.
    first = store.claim_batch(lane, BATCH_LEASE)
    if first is None:
        return reports
    others = [
        threading.Thread(target=work, args=(None,), name=f"drumbeat-{lane}-{i}")
        for i in range(1, workers)
    ]
    for thread in others:
        thread.start()
    work(first)
    for thread in others:
        thread.join()
    if failures:
        raise failures[0]
    return reports


class ThreadExecutor:
    """`drain` behind the executor interface: `threads` threads in this process (waiting
    for `gate` before each batch, if given)."""

    def __init__(
        self, store: Store, programs: Programs, *, threads: int = 1, gate: LaneGate | None = None
    ) -> None:
        self.store = store
        self.programs = programs
        self.threads = threads
        self.gate = gate

    def drain(self, lane: str, now: float) -> list[BatchReport]:
        return drain(
            self.store, self.programs, lane, lambda: now, workers=self.threads, gate=self.gate
        )

    def close(self) -> None:
        """Nothing to release: the threads end with each drain."""
