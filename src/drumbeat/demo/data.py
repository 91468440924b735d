"""Load the synthetic SaaS user base into a workspace through the public Python API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from drumbeat.client import Drumbeat
from drumbeat.demo.synthetic import iter_events, iter_users

# The demo's virtual "now": fixed, so every run of the demo tells the same story.
DEMO_NOW = 1_772_409_600.0  # 2026-03-02T00:00:00Z, a Monday


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while part := list(islice(iterator, size)):
        yield part


def load_demo_data(
    client: Drumbeat, users: int, seed: int, *, progress: Callable[[str, int], None] | None = None
) -> tuple[int, int]:
    """Identify `users` synthetic users and track their last 60 days; idempotent."""
    size = client.store.batch_size * 10
    for part in batched(iter_users(users, seed=seed, now=client.clock()), size):
        client.identify_many(part)
        if progress:
            progress("users", len(part))
    events = 0
    for part in batched(iter_events(users, seed=seed, now=client.clock()), size):
        client.track_many(part)
        events += len(part)
        if progress:
            progress("events", len(part))
    return users, events
