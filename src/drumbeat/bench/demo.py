"""`drumbeat bench demo`: the demo's whole story (`drumbeat demo`) on a fresh SQLite file,
timed from the first user written to the last tick: the synthetic user base and its history
imported through the Python API, three campaigns, N simulated days of activity and ticks,
email to the file channel. It has no raw floor: what it measures is the whole of Drumbeat.
"""

from __future__ import annotations

import tempfile
import time

from drumbeat.bench.report import Figure, peak_rss_mib
from drumbeat.client import Drumbeat
from drumbeat.config import Settings
from drumbeat.demo.story import tell
from drumbeat.pipeline.runner import Runner

TICK_EVERY = 6 * 3600.0  # as `drumbeat demo`


def run(users: int, *, days: int, workers: int, batch_size: int, seed: int = 7) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Settings(
            database_url=f"sqlite:///{tmp}/demo.db",
            outbox_file=f"{tmp}/messages.jsonl",
            batch_size=batch_size,
            workers=workers,
        )
        client = Drumbeat(config=config)
        runner = Runner(client.store, config, client.clock, workers=workers)  # type: ignore[arg-type]
        began = time.perf_counter()
        story = tell(client, runner, users=users, seed=seed, days=days, every=TICK_EVERY)
        took = time.perf_counter() - began
        runner.close()
        client.close()
    target = "< 60 s" if users == 50_000 and days == 60 else "< 60 s at 50,000 users, 60 days"
    return [
        Figure(
            f"demo: {users:,} users, {story.events + story.activity:,} events, "
            f"{days} simulated days ({len(story.ticks)} ticks)",
            took,
            "s",
            None,
            target,
        ),
        Figure("peak memory of the run", peak_rss_mib(), "MiB"),
    ]
