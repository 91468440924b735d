"""A writer thread: the database works on one batch while the caller prepares the next.

sqlite3 and psycopg let go of the GIL while the database works, so a statement that takes
many rows at once (a multi-row INSERT, a COPY, an INSERT … SELECT from a staged batch) runs
beside the Python that reads and checks the next lines. The queue is bounded: memory stays
flat however long the file.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

Item = TypeVar("Item")
_STOP = object()


class BackgroundWriter(Generic[Item]):
    """Calls `write(item)` on a thread of its own for each `put` item, in order.

    `put` blocks while `depth` items wait; the first error of `write` is raised again by the
    next `put` or by `close`, and the items after it are dropped. Used as a context manager,
    it waits for the queue on success and drops what is left on an error.
    """

    def __init__(
        self, write: Callable[[Item], None], *, depth: int = 2, name: str = "drumbeat-writer"
    ) -> None:
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._dropping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        self._raise()
        self._queue.put(item)

    def close(self, *, drop: bool = False) -> None:
        """Wait until every item is written (or, with `drop`, skip those still queued)."""
        if self._closed:
            return
        self._closed = True
        self._dropping = drop
        self._queue.put(_STOP)
        self._thread.join()
        if not drop:
            self._raise()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None or self._dropping:
                continue
            try:
                self._write(item)  # type: ignore[arg-type]
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundWriter[Item]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close(drop=error is not None)
