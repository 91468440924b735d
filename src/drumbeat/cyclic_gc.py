"""Pausing Python's cyclic garbage collector around bulk work that makes many containers
without cycles and keeps a batch of them alive (a users file's checked rows, a claim of
outbox rows): the collector would only walk them over and over (a fifth of a big import's
time; a tenth to a fifth of a dispatcher's Python a message). Reference counting still frees
everything as usual; only cycles wait for the collector to run again. And keeping a
process's start-up objects out of its full collections (`freeze_startup`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_frozen = False


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """The collector off for the block, back on after it if it was on before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_startup() -> None:
    """Move every object alive now to the collector's permanent generation (`gc.freeze`),
    once a process: the first call, made when it has imported its modules and opened its
    store, as a `Runner` or a worker child is made. Those objects (functions, classes,
    tables, compiled statements: ~100,000) live as long as the process, yet each full
    collection walked them all again, and a bulk tick, which makes and drops thousands of
    rows a batch, runs dozens: 1.4 s of `drumbeat advance`'s CPU at 100,000 users on
    PostgreSQL, 0.13 s once they are frozen. Garbage alive at that moment is never freed,
    hence once, at start-up, never in a loop."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()
