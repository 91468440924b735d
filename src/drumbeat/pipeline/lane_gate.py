"""The fast lane first, on one machine: while the fast lane drains, the workers of the other
lanes start no new batch (each finishes the one in hand, then waits). The lanes have
workers of their own, but on one machine they share its cores and its store (SQLite's one
write lock; PostgreSQL's server and log), so a slow backlog worked beside a fast drain made
each fast batch wait on the slow lane's work. The gate is a lock file: the fast drain holds
it exclusively, a background worker takes it shared, and lets go, before each batch. In the
distributed shape each lane has machines of its own, and no gate.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


class LaneGate:
    """The gate at `path` (a file made by `make`, removed by `remove`)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def make(cls) -> LaneGate:
        handle, path = tempfile.mkstemp(prefix="drumbeat-lanes-", suffix=".gate")
        os.close(handle)
        return cls(path)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Closed to the other lanes' workers for the duration (the fast lane's drain)."""
        with open(self.path, "ab") as gate:
            fcntl.flock(gate, fcntl.LOCK_EX)  # let go when the file is closed
            yield

    def wait(self) -> None:
        """Return once the gate is open (a background worker, before each batch)."""
        with open(self.path, "ab") as gate:
            fcntl.flock(gate, fcntl.LOCK_SH)

    def remove(self) -> None:
        os.unlink(self.path)
