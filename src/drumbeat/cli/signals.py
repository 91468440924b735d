"""Stopping `drumbeat run` on SIGTERM or SIGINT (Ctrl-C) after the tick under way."""

from __future__ import annotations

import contextlib
import os
import select
import signal
from types import FrameType


class StopOnSignal:
    """Set by SIGTERM or SIGINT; `wait` returns as soon as it is.

    Not a threading.Event: a handler runs in the main thread between two bytecodes, possibly
    while that thread holds the Event's lock (inside its own `wait`), and setting it there
    would deadlock. The handler only sets a flag and writes a byte to a pipe that `wait`
    selects on, neither of which takes a lock."""

    def __init__(self) -> None:
        self._set = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, _number: int, _frame: FrameType | None) -> None:
        self._set = True
        with contextlib.suppress(BlockingIOError):  # a full pipe already says "wake up"
            os.write(self._wake_write, b"!")

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if not self._set:
            select.select([self._wake_read], [], [], timeout)
        return self._set

    def close(self) -> None:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_DFL)
        os.close(self._wake_read)
        os.close(self._wake_write)
