"""`drumbeat bench store`: import N synthetic users from a JSONL file and count a
three-condition audience, each next to its raw floor measured in the same run.

Floors: the same file read line by line and written with a plain executemany (SQLite) or
COPY (PostgreSQL) into a bare table; the same count written as hand-made SQL without
Drumbeat's type guards.

Before the count the rule goes live as a user makes it live (a campaign with it as audience,
applied and activated), so the store indexes its attributes; that build (CONCURRENTLY on
PostgreSQL) is timed as a figure of its own.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import delete, text

from drumbeat.bench.report import Figure, peak_rss_mib
from drumbeat.campaigns import apply, plan_apply, set_status
from drumbeat.demo.data import DEMO_NOW
from drumbeat.demo.synthetic import iter_users
from drumbeat.ingest.importer import import_file
from drumbeat.model.campaign import parse_campaign
from drumbeat.model.documents import load_document
from drumbeat.model.rules import parse_rule
from drumbeat.store import Store, open_store
from drumbeat.store.schema import users as users_table

RULE_FILE = "three-conditions.yaml"
LIVE_KEY = "bench-audience"  # the campaign that makes the rule live while it is counted
FLOOR_COUNT = {  # the same three conditions, by hand, no type guards
    "sqlite": "SELECT count(*) FROM users WHERE workspace_id = :ws "
    "AND attributes ->> '$.plan' = 'free' AND attributes ->> '$.seats' >= 3 "
    "AND attributes ->> '$.country' IN ('US', 'GB', 'DE')",
    "postgresql": "SELECT count(*) FROM users WHERE workspace_id = :ws "
    "AND attributes ->> 'plan' = 'free' AND (attributes ->> 'seats')::float8 >= 3 "
    "AND attributes ->> 'country' IN ('US', 'GB', 'DE')",
}


def write_users_file(path: Path, users: int, seed: int) -> None:
    with path.open("wb") as out:
        for call in iter_users(users, seed=seed, now=DEMO_NOW):
            out.write(orjson.dumps(call) + b"\n")


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def floor_import(store: Store, path: Path) -> None:
    """Plain rows, no validation, no upsert: the least any import of this file can cost."""
    columns = "user_id text, email text, timezone text, created_at text, attributes text"
    with store.writing() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_floor_users")
        conn.exec_driver_sql(f"CREATE TABLE bench_floor_users ({columns})")
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        if not batch:
            return
        with store.writing() as conn:
            if store.dialect == "postgresql":
                raw: Any = conn.connection.driver_connection
                with raw.cursor() as cur, cur.copy("COPY bench_floor_users FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            else:
                conn.exec_driver_sql("INSERT INTO bench_floor_users VALUES (?, ?, ?, ?, ?)", batch)
        batch.clear()

    with path.open("rb") as handle:
        for line in handle:
            call = orjson.loads(line)
            traits = call["traits"]
            batch.append(
                (
                    call["user_id"],
                    traits.get("email"),
                    traits.get("timezone"),
                    traits.get("created_at"),
                    orjson.dumps(traits).decode(),
                )
            )
            if len(batch) >= store.batch_size:
                flush()
    flush()
    with store.writing() as conn:
        conn.exec_driver_sql("DROP TABLE bench_floor_users")


def run(
    url: str,
    users: int,
    seed: int,
    batch_size: int,
    processes: int,
    workdir: Path | None = None,
) -> list[Figure]:
    """One backend: import rate (and peak memory), then the audience count."""
    store = open_store(url, batch_size=batch_size)
    backend = store.dialect
    ws = store.workspace_id(f"bench-{uuid.uuid4().hex[:8]}", now=DEMO_NOW)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "users.jsonl"
        write_users_file(path, users, seed)
        floor_seconds = timed(lambda: floor_import(store, path))
        rss_before = peak_rss_mib()
        import_seconds = timed(
            lambda: import_file(store, ws, path, "users", now=DEMO_NOW, processes=processes)
        )
        rss = peak_rss_mib()
    if backend == "postgresql":
        with store.writing() as conn:
            conn.exec_driver_sql("ANALYZE users")
    rule_doc = load_document(Path(str(files("drumbeat.demo") / "rules" / RULE_FILE)))
    rule = parse_rule(rule_doc)
    index_seconds = timed(lambda: make_live(store, ws, rule_doc))
    try:
        count = store.count_audience(ws, rule, DEMO_NOW)
        drumbeat_count = statistics.median(
            timed(lambda: store.count_audience(ws, rule, DEMO_NOW)) for _ in range(5)
        )
    finally:  # never leave a live campaign (ticks would run it) in the database benchmarked
        set_status(store, ws, LIVE_KEY, "archived", DEMO_NOW)
    with store.engine.connect() as conn:
        floor_total = conn.execute(text(FLOOR_COUNT[backend]), {"ws": ws}).scalar_one()
        floor_count = statistics.median(
            timed(lambda: conn.execute(text(FLOOR_COUNT[backend]), {"ws": ws}).scalar_one())
            for _ in range(5)
        )
    if floor_total != count:
        raise AssertionError(f"{backend}: Drumbeat counted {count}, plain SQL {floor_total}")
    remove_users(store, ws)
    store.close()
    targets = {
        "sqlite": ("≥ 100,000 users/s", "≤ 1.5 s"),
        "postgresql": ("≥ 80,000 users/s", "≤ 0.5 s"),
    }[backend]
    return [
        Figure(
            f"{backend}: import {users:,} users (file → store)",
            users / import_seconds,
            "users/s",
            users / floor_seconds,
            targets[0],
        ),
        Figure(
            f"{backend}: peak memory of the import",
            rss,
            "MiB",
            None,
            f"< 1024 MiB (was {rss_before:,.0f} MiB before)",
        ),
        Figure(
            f"{backend}: index the rule's attributes ({users:,} users)",
            index_seconds,
            "s",
            None,
            "once, on apply",
        ),
        Figure(
            f"{backend}: count a three-condition audience ({count:,} users)",
            drumbeat_count,
            "s",
            floor_count,
            targets[1],
        ),
    ]


def make_live(store: Store, ws: int, rule_doc: object) -> None:
    """Apply and activate a campaign whose audience is the rule (which syncs the indexes)."""
    campaign = parse_campaign(
        {
            "key": LIVE_KEY,
            "name": "The store benchmark's audience",
            "audience": rule_doc,
            "steps": [{"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hi"}}],
        }
    )
    apply(plan_apply(campaign, store, ws), store, ws, DEMO_NOW, activate=True)


def remove_users(store: Store, ws: int) -> None:
    """Delete the run's users, so that the next run on the same PostgreSQL database meets
    the same table (a count's plan reads more as other workspaces pile up)."""
    with store.writing() as conn:
        conn.execute(delete(users_table).where(users_table.c.workspace_id == ws))
    if store.dialect == "postgresql":  # VACUUM runs outside a transaction
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE users")
