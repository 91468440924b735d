"""`drumbeat bench lanes`: lane isolation, as `drumbeat run` ticks (the fast lane in the tick,
the slow lane on its own workers). Each tick, new users arrive who match a fast campaign;
the figure is a fast batch's wait, from the end of the tick's planning to the fast lane
drained, its p99 over the ticks: first alone (the floor), then while a slow-lane campaign
holds a backlog of BACKLOG users. The slow lane must still hold a backlog at the end of
the loaded ticks, or the figure says so. On a fresh store: a new SQLite file, or a new
PostgreSQL database on the server `--postgres` names (dropped at the end).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

from drumbeat.bench.databases import fresh_database
from drumbeat.bench.report import Figure
from drumbeat.client import Drumbeat
from drumbeat.config import Settings
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.planner import plan_all
from drumbeat.pipeline.runner import Runner


def _campaign(key: str, plan: str, lane: str | None) -> dict[str, object]:
    return {
        "key": key,
        "name": key,
        "audience": {"attr": "plan", "eq": plan},
        "steps": [{"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hi"}}],
        **({"lane": lane} if lane else {}),
    }


def run(
    postgres: str | None,
    *,
    arriving: int,
    backlog: int,
    ticks: int,
    workers: int,
    slow_workers: int,
    batch_size: int,
) -> list[Figure]:
    """On a fresh SQLite file (`postgres` None) or PostgreSQL database."""
    with tempfile.TemporaryDirectory() as tmp, _fresh(postgres, tmp) as url:
        config = Settings(
            database_url=url,
            outbox_file=f"{tmp}/messages.jsonl",
            batch_size=batch_size,
            workers=workers,
            slow_workers=slow_workers,
        )
        client = Drumbeat(config=config)
        runner = Runner(client.store, config, workers=workers)
        try:
            client.identify_many(
                {"user_id": f"s{i:07}", "traits": {"plan": "free"}} for i in range(backlog)
            )
            client.campaigns.apply([parse_campaign(_campaign("fast", "paid", None))], activate=True)
            alone = _waits(client, runner, "a", arriving, ticks)
            client.campaigns.apply(
                [parse_campaign(_campaign("slow", "free", "slow"))], activate=True
            )
            loaded = _waits(client, runner, "b", arriving, ticks)
            left = client.store.batch_counts(client.ws)
        finally:
            runner.close()
            client.close()
    dialect = "sqlite" if postgres is None else "postgresql"
    held = left.get("pending", 0) + left.get("running", 0)
    note = f"slow backlog left: {held} batches" if held else "the slow backlog ran out: too small"
    return [
        Figure(
            f"{dialect}: fast batch wait p99, {ticks} ticks of {arriving} users, alone",
            alone,
            "ms",
        ),
        Figure(
            f"{dialect}: the same while the slow lane holds {backlog:,} users ({note})",
            loaded,
            "ms",
            alone,
            "≤ 1.2×",
        ),
    ]


def _fresh(postgres: str | None, folder: str) -> AbstractContextManager[str]:
    """A new PostgreSQL database on `postgres`'s server (dropped at the end), or SQLite file."""
    if postgres:
        return fresh_database(postgres, "lanes")
    return nullcontext(f"sqlite:///{folder}/lanes.db")


def _waits(client: Drumbeat, runner: Runner, prefix: str, arriving: int, ticks: int) -> float:
    """The p99 (the worst of fewer than 100) of the ticks' fast-lane waits, in ms."""
    waits = []
    for tick in range(ticks):
        client.identify_many(
            {"user_id": f"{prefix}{tick:04}-{i:05}", "traits": {"plan": "paid"}}
            for i in range(arriving)
        )
        now = time.time()
        with runner.lanes.fast_first():  # as `drumbeat run`'s tick (`Runner.tick`)
            plan_all(
                client.store,
                runner.programs,
                now,
                full_pass_every=client.config.full_pass_every,
                governor=runner.governor,
            )
            waits.append(_timed(partial(runner.lanes.drain_fast, now)))
    waits.sort()
    return waits[min(len(waits) - 1, int(0.99 * len(waits)))] * 1000


def _timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began
