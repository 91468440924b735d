"""Keeping a claim of outbox rows while it is being sent: a thread moves the rows' lease on
(real time) every third of the lease, so a claim that takes long (a slow provider) is not
taken over and sent a second time. A row that was taken over all the same (this process
stalled past its lease) is dropped from `held`, and the dispatcher does not send it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

from drumbeat.store import Store
from drumbeat.store.outbox_claims import OutboxRow

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self, store: Store, rows: Sequence[OutboxRow], lease: float, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.fences = {row.id: row.fence for row in rows}
        self.held = set(self.fences)
        self.lease = lease
        self.clock = clock
        self._stop = threading.Event()
        name = f"{threading.current_thread().name}-lease"  # as the dispatcher's threads
        self._thread = threading.Thread(target=self._keep, name=name, daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> LeaseKeeper:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def holds(self, row_id: int) -> bool:
        return row_id in self.held

    def _keep(self) -> None:
        while not self._stop.wait(self.lease / 3):
            claims = [(row_id, self.fences[row_id]) for row_id in sorted(self.held)]
            try:
                self.held = self.store.extend_leases(claims, self.clock() + self.lease)
            except Exception:  # the store is away for now: the next round tries again
                log.warning("cannot extend the lease of %d outbox rows", len(claims), exc_info=True)
