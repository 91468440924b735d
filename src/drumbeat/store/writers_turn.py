"""The writers' turn on a SQLite file: writers (threads or processes) wait for their turn on
a lock file beside the database (`<db>-writer`) before they take SQLite's write lock.
SQLite's own wait polls, sleeping up to 100 ms between tries, so with two busy workers its
write lock sat idle while the other slept; the kernel wakes a waiter on the lock file as
soon as it is let go. SQLite's lock stays the guard: this only orders the waiters.

A writer that gives way (a slow lane's worker) takes its turn only when no other writer
waits: the others hold `<db>-writer-wanted` shared while they wait, so a fast batch waits
for at most the one slow transaction under way.

Each thread opens the two files once and keeps them (opening and closing them cost ~0.1 ms
a write, after a batch's work had cooled the caches): a lock is held by an open file, so
each thread needs its own, and a process forked since opens its own too (a descriptor it
inherited shares its locks with its parent's). They are closed when their thread ends or
the turn is dropped."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_forks = 0  # forks this process came through (`os.getpid()` is a system call a write)


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class WritersTurn:
    def __init__(self, database: str) -> None:
        self.database = database
        self._here = threading.local()

    @contextmanager
    def taken(self, *, give_way: bool = False) -> Iterator[None]:
        """Hold the turn for the block; `give_way`: only once no other writer waits."""
        files = self._files()
        if give_way:
            _turn_after_others(files.turn, files.wanted)
        else:
            fcntl.flock(files.wanted, fcntl.LOCK_SH)
            fcntl.flock(files.turn, fcntl.LOCK_EX)
            fcntl.flock(files.wanted, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(files.turn, fcntl.LOCK_UN)

    def _files(self) -> _LockFiles:
        files: _LockFiles | None = getattr(self._here, "files", None)
        if files is None or files.forks != _forks:
            files = self._here.files = _LockFiles(self.database)
        return files


class _LockFiles:
    """One thread's descriptors of the turn's two files, closed when it is dropped."""

    turn = wanted = -1

    def __init__(self, database: str) -> None:
        self.forks = _forks
        self.turn = _open(f"{database}-writer")
        self.wanted = _open(f"{database}-writer-wanted")

    def __del__(self) -> None:
        for fd in (self.turn, self.wanted):
            if fd >= 0:
                os.close(fd)


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)


def _turn_after_others(turn: int, wanted: int) -> None:
    """Take the writer's turn when no writer that does not give way waits for it: wait
    until none holds `wanted`, take the turn, and give it back if one came meanwhile."""
    while True:
        fcntl.flock(wanted, fcntl.LOCK_EX)  # none waits now
        fcntl.flock(wanted, fcntl.LOCK_UN)
        fcntl.flock(turn, fcntl.LOCK_EX)
        try:
            fcntl.flock(wanted, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(turn, fcntl.LOCK_UN)  # one came while this waited: after it
            continue
        fcntl.flock(wanted, fcntl.LOCK_UN)
        return
