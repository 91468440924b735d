"""Pausing Python's cyclic garbage collector around bulk work that makes many containers
without cycles and keeps a batch of them alive (a users file's checked rows, a claim of
outbox rows): the collector would only walk them over and over (a fifth of a big import's
time; a tenth to a fifth of a dispatcher's Python a message). Reference counting still frees
everything as usual; only cycles wait for the collector to run again."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
