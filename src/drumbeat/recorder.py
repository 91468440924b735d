"""A process's timings, written into the store off the hot path: a thread takes the rows
drumbeat.metrics kept (per minute, workspace, kind, name) every `every` seconds and adds
them to the store's in one transaction, and once more when the recorder is closed. A few
rows a minute per process, whatever it did; a write that fails is tried again next time.

Every command that works records (`drumbeat run`, `advance`, `import`, `serve`): the worker
processes of `drumbeat run` hand their timings to it with their batch reports. Old minutes
are dropped once an hour (`keep` seconds). A process that forks its workers (a Celery
pool) starts a recorder in each after the fork: a forked child has none of its parent's
rows or thread (drumbeat.metrics)."""

from __future__ import annotations

import logging
import threading
import time

from drumbeat import metrics
from drumbeat.store import Store

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0  # real seconds between two drops of old timings by one process


class Recorder:
    def __init__(self, store: Store, *, every: float, keep: float) -> None:
        self.store = store
        self.every = every
        self.keep = keep
        self._stop = threading.Event()
        self._pruned_at = 0.0
        metrics.record_for_store(True)
        self._thread = threading.Thread(target=self._loop, name="drumbeat-recorder", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.flush()

    def flush(self) -> None:
        """Write what was measured since the last flush (kept for the next one on failure)."""
        rows = metrics.take_rows()
        try:
            self.store.add_timings(rows)
        except Exception as exc:  # never stop the work for its timings
            log.warning("could not write timings (tried again later): %s", exc)
            metrics.give_back(rows)
            return
        if time.monotonic() - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = time.monotonic()
            try:
                self.store.prune_timings(time.time() - self.keep)
            except Exception as exc:
                log.warning("could not drop old timings: %s", exc)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.flush()
        metrics.record_for_store(False)
