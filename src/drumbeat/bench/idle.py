"""`drumbeat bench idle`: what a tick costs when nothing changed and nothing is due, with
10, 100 and 1,000 active campaigns over N users, in a warm runner (`Runner.tick`, as
`drumbeat run` ticks), on SQLite (and PostgreSQL if given).

Each campaign's audience is one cohort of users (an attribute the live-rule indexes cover),
so a tenth of the users are members, waiting 30 days at their first step; half the
campaigns end on a `purchased` event (a goal), so their rules read an event name. The
campaigns are applied and planned (their first full pass, their members entered), then
`TICKS` ticks a minute apart are timed, each nothing changed or due. The same runner's tick
with no campaign at all is measured first (the batch claim and the dispatch every tick pays
for). Floor of each tick: as many `SELECT 1` round trips as it sent
statements, run right after it on one of the store's connections (what the statements would
cost if the database did nothing). Statements are counted per tick: a tick's cost must not
grow with the campaigns.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete

from drumbeat.bench.report import Figure
from drumbeat.bench.statements import counted
from drumbeat.campaigns import apply_all, plan_sources
from drumbeat.config import Settings
from drumbeat.model.attributes import AttrType
from drumbeat.model.campaign import parse_campaign
from drumbeat.model.records import UserRecord
from drumbeat.pipeline.runner import Runner
from drumbeat.store import Store, open_store
from drumbeat.store.schema import metadata

START = 1_772_409_600.0  # 2026-03-02T00:00:00Z
TICKS = 11
COHORTS_PER_CAMPAIGN = 10  # a campaign's cohort is one in ten of those: a tenth are members
WRITE_CHUNK = 10_000
TYPES = {"plan": AttrType.STRING, "cohort": AttrType.NUMBER}


def campaign(n: int) -> dict[str, object]:
    doc: dict[str, object] = {
        "key": f"idle-{n:05d}",
        "name": f"Cohort {n}",
        "audience": {"attr": "cohort", "eq": n},
        "steps": [
            {"wait": "30d"},
            {"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hello"}},
        ],
    }
    if n % 2:
        doc["goal"] = {"rule": {"event": "purchased"}}
    return doc


def load_users(store: Store, ws: int, users: int, cohorts: int) -> None:
    """N users written a day before the ticks (so none counts as changed)."""
    for start in range(0, users, WRITE_CHUNK):
        records = [
            UserRecord(f"u{i:08d}", {}, {"plan": "free", "cohort": i % cohorts})
            for i in range(start, min(users, start + WRITE_CHUNK))
        ]
        store.write_users(ws, records, START - 86_400, new_types=TYPES)


def add_campaigns(store: Store, ws: int, start: int, stop: int, now: float) -> None:
    sources = [(f"campaign {n}", parse_campaign(campaign(n))) for n in range(start, stop)]
    plans = plan_sources(sources, store, ws)
    apply_all(plans, store, ws, now, activate=True)


def timed_ticks(runner: Runner, now: float) -> tuple[Measure, float]:
    """`TICKS` idle ticks from `now`, each followed by its floor: as many `SELECT 1` round
    trips as the tick sent statements, on one of the store's connections, so that the
    machine's load weighs on both alike. Medians; and the time after the last tick."""
    seconds, floors, statements = [], [], []
    for _ in range(TICKS):
        now += 60
        with counted(runner.store.engine) as seen:
            began = time.perf_counter()
            runner.tick(now)
            seconds.append(time.perf_counter() - began)
        statements.append(seen.count)
        with runner.store.engine.connect() as conn:
            began = time.perf_counter()
            for _ in range(seen.count):
                conn.exec_driver_sql("SELECT 1").all()
            floors.append(time.perf_counter() - began)
    medians = (statistics.median(seconds), statistics.median(floors), statistics.median(statements))
    return Measure(*medians), now


@dataclass(frozen=True)
class Measure:
    seconds: float
    floor: float  # SELECT 1 × the tick's statements
    statements: float


def run(url: str, users: int, sizes: Sequence[int], config: Settings) -> list[Figure]:
    """One backend: the tick with no campaign, then with each number of campaigns."""
    store = open_store(url, batch_size=config.batch_size)
    backend = store.dialect
    ws = store.workspace_id(f"bench-{uuid.uuid4().hex[:8]}", now=START)
    runner = Runner(store, config, workers=1)
    measured: dict[int, Measure] = {}
    try:
        load_users(store, ws, users, max(sizes) * COHORTS_PER_CAMPAIGN)
        if store.dialect == "postgresql":  # as autovacuum would, soon after an import: with
            with store.writing() as conn:  # none, the changed users were read by another
                conn.exec_driver_sql("ANALYZE users")  # index (7 ms at 20k users)
        now = START
        runner.tick(now)  # warm: statistics, pools, statement caches
        measured[0], now = timed_ticks(runner, now)
        made = 0
        for size in sizes:
            add_campaigns(store, ws, made, size, now)
            made = size
            for _ in range(2):  # the first full pass and its batches, then a quiet tick
                now += 60
                runner.tick(now)
            measured[size], now = timed_ticks(runner, now)
    finally:
        runner.close()
        remove(store, ws)
        store.close()
    figures = []
    for size, m in measured.items():
        what = f"{backend}: idle tick, {size:,} active campaigns, {users:,} users"
        figures.append(Figure(what, m.seconds * 1000, "ms", m.floor * 1000, "≤ 50 ms"))
        figures.append(
            Figure(
                f"{backend}: statements in that tick",
                m.statements,
                "statements",
                measured[0].statements,
                "the same at any number of campaigns",
            )
        )
    largest, smallest = measured[max(sizes)], measured[min(sizes)]
    figures.append(
        Figure(
            f"{backend}: tick at {max(sizes):,} / at {min(sizes):,} campaigns",
            largest.seconds / smallest.seconds,
            "×",
            largest.floor / smallest.floor,
            "≈ 1× (flat)",
        )
    )
    return figures


def remove(store: Store, ws: int) -> None:
    """The run's rows deleted, in every table that has a workspace's (its campaigns too: no
    later tick on this database plans them), so that the next run on the same database
    meets the same tables, and a user's database keeps nothing of a bench run."""
    with store.writing() as conn:
        for table in reversed(metadata.sorted_tables):  # rows that others refer to last
            if table.name != "workspaces" and "workspace_id" in table.c:
                conn.execute(delete(table).where(table.c.workspace_id == ws))


def run_all(
    users: int, sizes: Sequence[int], config: Settings, folder: Path | None, postgres: str | None
) -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        figures += run(f"sqlite:///{tmp}/bench.db", users, sizes, config)
    if postgres:
        figures += run(postgres, users, sizes, config)
    return figures
