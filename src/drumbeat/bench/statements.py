"""Count the statements a piece of work sends to the database: every cursor execution of an
engine (an `executemany` counts once: one round trip in pipeline or array form)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


class Statements:
    def __init__(self) -> None:
        self.count = 0
        self.texts: list[str] = []
        self.threads: list[str] = []  # the name of the thread that sent each

    def __call__(self, *args: Any) -> None:
        self.count += 1
        self.texts.append(str(args[2]))
        self.threads.append(threading.current_thread().name)


@contextmanager
def counted(engine: Engine) -> Iterator[Statements]:
    """The statements `engine` runs inside the block (BEGIN and COMMIT are not statements
    here: the DBAPI sends them itself)."""
    seen = Statements()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", seen)
