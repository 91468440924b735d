"""`drumbeat bench engine`: N users who all match a campaign, on SQLite.

1. The first tick: entry plus the first message queued for every user (plan + work, no
   dispatch), in users/s, next to the raw floor measured in the same run: read the same
   users and write the same memberships and outbox rows with plain SQL.
2. A second tick when 1% of members are due: its cost as a share of the first full pass
   (the planner must touch due and changed members, not the whole audience).

The floor runs on a copy of the database made once the users are in, so that its rows
neither take space in the ticks' tables nor leave free pages behind. Each timed phase ends
with a WAL checkpoint, so it pays for copying its own pages into the database file, and no
phase pays for an earlier one's (SQLite checkpoints at the first commit past
`wal_autocheckpoint`, whoever makes it).
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from drumbeat.bench.report import Figure, peak_rss_mib
from drumbeat.campaigns import apply, plan_apply
from drumbeat.model.campaign import parse_campaign
from drumbeat.model.records import UserRecord
from drumbeat.pipeline.executors import Executor, make_executor
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.store import Store, open_store
from drumbeat.store.schema import memberships

START = 1_772_409_600.0  # 2026-03-02T00:00:00Z
CAMPAIGN = {
    "key": "bench",
    "name": "Everyone on the free plan",
    "audience": {"attr": "plan", "eq": "free"},
    "steps": [
        {
            "send": {
                "id": "welcome",
                "channel": "email",
                "subject": "Welcome",
                "body": "Hello {{ user.email }}",
            }
        },
        {"wait": "2d"},
        {"send": {"id": "follow-up", "channel": "email", "subject": "Still there?", "body": "Hi"}},
    ],
}


def load_users(store: Store, ws: int, users: int) -> None:
    """N free-plan users, written long before the ticks (so none counts as changed)."""
    for start in range(0, users, 10_000):
        records = [
            UserRecord(
                f"u{i:08d}", {"email": f"u{i}@example.com"}, {"plan": "free", "seats": i % 50}
            )
            for i in range(start, min(users, start + 10_000))
        ]
        store.write_users(ws, records, START - 86400)


def tick(store: Store, programs: Programs, executor: Executor, now: float) -> float:
    began = time.perf_counter()
    plan_all(store, programs, now, full_pass_every=86400.0)
    executor.drain(DEFAULT_LANE, now)
    store.checkpoint()
    return time.perf_counter() - began


def floor(store: Store, ws: int, now: float, batch_size: int) -> float:
    """Read the same users, write their memberships and outbox rows into the same tables,
    in batches: plain SQL, no engine. `store` is a copy of the benchmark's database made
    before the ticks, so neither run leaves pages or free space in the other's way."""
    payload = orjson.dumps({"subject": "Welcome", "body": "Hello"}).decode()
    began = time.perf_counter()
    raw = store.engine.raw_connection()
    try:
        rows = raw.execute(
            "SELECT user_id FROM users WHERE workspace_id = ? AND attributes ->> '$.plan' = 'free'",
            (ws,),
        ).fetchall()
        for start in range(0, len(rows), batch_size):
            part = [row[0] for row in rows[start : start + batch_size]]
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(
                "INSERT INTO memberships (workspace_id, campaign_key, user_id, state, position,"
                " entry_count, entered_at, step_started_at, next_due_at, last_sent_at,"
                " last_step, attributed, version) VALUES (?, 'floor', ?, 'active', 'steps[1]',"
                " 1, ?, ?, ?, ?, 'welcome', 0, 1)",
                [(ws, user, now, now, now + 172800, now) for user in part],
            )
            raw.executemany(
                "INSERT INTO outbox (workspace_id, dedupe_key, campaign_key, step_id, user_id,"
                " entry_count, channel, payload, status, attempts, available_at, created_at)"
                " VALUES (?, ?, 'floor', 'welcome', ?, 1, 'email', ?, 'pending', 0, ?, ?)",
                [(ws, f"floor/{user}", user, payload, now, now) for user in part],
            )
            raw.execute("COMMIT")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        took = time.perf_counter() - began
    finally:
        raw.close()
    return took


def make_due(store: Store, ws: int, share: float, now: float, seed: int) -> int:
    ids = [m.user_id for m in store.members(ws, "bench")]
    due = random.Random(seed).sample(ids, max(1, int(len(ids) * share)))
    with store.writing() as conn:
        conn.execute(
            memberships.update()
            .where(memberships.c.workspace_id == ws, memberships.c.user_id.in_(due))
            .values(next_due_at=now),
            [],
        )
    return len(due)


def run(
    users: int, *, workers: int, batch_size: int, seed: int = 7, folder: Path | None = None
) -> list[Figure]:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db", batch_size=batch_size)
        ws = store.workspace_id("default")
        load_users(store, ws, users)
        store.checkpoint()  # all of it in the database file, which the floor gets a copy of
        shutil.copyfile(f"{tmp}/bench.db", f"{tmp}/floor.db")
        floor_store = open_store(f"sqlite:///{tmp}/floor.db", batch_size=batch_size)
        raw = floor(floor_store, ws, START, batch_size)
        floor_store.close()
        campaign = parse_campaign(CAMPAIGN)
        apply(plan_apply(campaign, store, ws), store, ws, START, activate=True)
        programs = Programs(store)
        executor = make_executor(store, programs, workers)
        executor.drain(DEFAULT_LANE, START)  # worker processes start before the clock runs
        first = tick(store, programs, executor, START)
        queued = sum(store.outbox_counts(ws).values())
        if queued != users:
            raise AssertionError(f"the first tick queued {queued:,} messages for {users:,} users")
        later = START + 3600
        due = make_due(store, ws, 0.01, later, seed)
        store.checkpoint()
        second = tick(store, programs, executor, later)
        executor.close()
        rss = peak_rss_mib()
        store.close()
    figures: list[Any] = [
        Figure(
            f"first tick: entry + first message, {users:,} users (sqlite)",
            users / first,
            "users/s",
            users / raw,
            "≥ 50,000 users/s",
        ),
        Figure(
            f"second tick, {due:,} members due (1%)",
            100 * second / first,
            "% of the first",
            None,
            f"≤ 3% ({second:.2f} s vs {first:.2f} s)",
        ),
        Figure("peak memory of the run", rss, "MiB", None, ""),
    ]
    return figures
