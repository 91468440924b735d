"""SQLite's write-ahead log copied into the database by a thread, off the writers' path.

Left to itself, SQLite checkpoints in the commit that takes the WAL past `wal_autocheckpoint`
pages: that one call copies what the WAL holds into the database and waits for its fsyncs
(an identify of 40-140 ms among identifies of 1 ms, `drumbeat bench event`). Instead a
thread of each process that writes runs a PASSIVE checkpoint on a connection of its own,
at most every PAUSE seconds while that process writes: writers go on committing meanwhile
(WAL), and the GIL is let go while SQLite copies and syncs.

The log starts over from its beginning only when a writer finds it copied whole, which
writers that keep committing never let happen. So once the log holds more than
RESTART_FRAMES, the thread copies again what they committed meanwhile until that is a few
pages (FEW_FRAMES), and copies those holding the writers' turn (`StoreCore._writers_turn`):
a writer waits for that at most, and the next one starts the log over. SQLite's own
autocheckpoint stays, at 64 MiB: the backstop if the thread falls behind."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger(__name__)
PAUSE = 0.2  # seconds between two checkpoints of one process, at most
RESTART_FRAMES = 4096  # 16 MiB of 4 KiB pages
FEW_FRAMES = 64
UNLOCKED_PASSES = 4
_CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"  # never waits for readers or writers


class Checkpointer:
    """Checkpoints one SQLite file's WAL on a thread, started at the first write in each
    process (a forked child has none of its parent's threads)."""

    def __init__(self, engine: Engine, turn: Callable[[], AbstractContextManager[None]]) -> None:
        self.engine, self.turn = engine, turn
        self.done = 0  # checkpoints run by this process's thread
        self.restarts = 0  # of which copied the log whole with the writers held
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def after_write(self) -> None:
        """A write committed: the thread checkpoints within PAUSE seconds."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        self._wake.set()

    def close(self) -> None:
        """Stop this process's thread (before the engine is disposed)."""
        thread, self._thread = self._thread, None
        if thread is not None and self._pid == os.getpid():
            self._stop.set()
            self._wake.set()
            thread.join()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drumbeat-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while self._wake.wait() and not self._stop.wait(PAUSE):
            self._wake.clear()
            try:
                self._checkpoint()
            except Exception as exc:  # the next write wakes it again
                log.warning("could not checkpoint the SQLite log: %s", exc)

    def _checkpoint(self) -> None:
        with self.engine.connect() as conn:
            raw: Any = conn.connection.driver_connection  # no transaction around it
            for _ in range(UNLOCKED_PASSES):  # writers go on committing
                _busy, frames, copied = raw.execute(_CHECKPOINT).fetchone()
                if frames - copied <= FEW_FRAMES:
                    break
            self.done += 1
            if frames > RESTART_FRAMES:
                with self.turn():  # the last few frames: the next writer starts it over
                    raw.execute(_CHECKPOINT).fetchall()
                self.restarts += 1
