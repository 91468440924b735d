"""`drumbeat bench event`: identify → decision, on SQLite. USERS users are members of
CAMPAIGNS active campaigns whose goal is `plan == pro`; each timed call is one
`Drumbeat.identify(user, {"plan": "pro"})`, which converts the user in every campaign in the
same call (the one-user event path). Then the same identify of other members with the event
path off (DRUMBEAT_EVENT_PATH_USERS=0): the plain write.

The floor, timed in the same run, call by call beside them (so both meet the same load): a
bare `sqlite3` transaction on a file of its own with the store's settings (WAL,
synchronous=NORMAL, the same autocheckpoint) that inserts one row and commits. Wall and CPU
time of this process (SQLite included) per call: on a shared machine the CPU figures are the
cost itself, the wall figures that plus the wait for a core."""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drumbeat.bench.report import Figure
from drumbeat.campaigns import apply, plan_apply
from drumbeat.client import Drumbeat
from drumbeat.config import settings
from drumbeat.engine.member import State
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.clock import StoreClock
from drumbeat.pipeline.executors import make_executor
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.store.connect import SQLITE_PRAGMAS

START = 1_772_409_600.0  # 2026-03-02T00:00:00Z


def definition(n: int) -> dict[str, object]:
    send = {"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hi"}}
    return {
        "key": f"upsell-{n}",
        "name": f"Upsell {n}",
        "audience": {"attr": "plan", "eq": "free"},
        "goal": {"rule": {"attr": "plan", "eq": "pro"}},
        "steps": [send, {"wait": "3d"}],
    }


def percentile(times: list[float], share: float) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[round(share * 100) - 1]


@dataclass
class Times:
    """Each call's wall and CPU seconds."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def time(self, call: Callable[[], object]) -> None:
        start, started = time.perf_counter(), time.process_time()
        call()
        self.wall.append(time.perf_counter() - start)
        self.cpu.append(time.process_time() - started)


def run(users: int, campaigns: int) -> list[Figure]:
    with tempfile.TemporaryDirectory() as folder:
        config = settings(database_url=f"sqlite:///{folder}/bench.db", workspace="bench")
        bare = bare_connection(f"{folder}/floor.db")
        with Drumbeat(config=config) as db:
            StoreClock(db.store).set(START)
            db.clock = StoreClock(db.store)
            ids = [f"user-{n:07}" for n in range(2 * users)]
            db.identify_many({"user_id": u, "traits": {"plan": "free"}} for u in ids)
            for n in range(campaigns):
                campaign = parse_campaign(definition(n))
                apply(plan_apply(campaign, db.store, db.ws), db.store, db.ws, START, activate=True)
            enter_all(db)
            db.store.checkpoint()  # the set-up's writes are not the calls' to copy
            event_path, floor = time_identify(db, bare, ids[:users])
            db.event_path.max_users = 0
            plain, plain_floor = time_identify(db, bare, ids[users:])
            converted = db.members(f"upsell-{campaigns - 1}", str(State.CONVERTED), limit=None)
            if len(converted) != users:  # the event path decided in every timed call
                raise RuntimeError(f"{len(converted)} of {users} users converted, not all")
        bare.close()
    return figures(f"identify → decision, {campaigns} campaigns", users, event_path, floor) + [
        Figure(
            f"identify, the event path off, {name} of {users:,} calls",
            percentile(clock, share) * 1000,
            "ms",
            percentile(floor_clock, share) * 1000,
        )
        for name, share, clock, floor_clock in (
            ("p50", 0.5, plain.wall, plain_floor.wall),
            ("p99", 0.99, plain.wall, plain_floor.wall),
        )
    ]


def figures(what: str, calls: int, times: Times, floor: Times) -> list[Figure]:
    rows = [
        ("p50", times.wall, floor.wall, 0.5, ""),
        ("p99", times.wall, floor.wall, 0.99, "p99 ≤ 5 ms"),
        ("CPU p50", times.cpu, floor.cpu, 0.5, ""),
        ("CPU p99", times.cpu, floor.cpu, 0.99, ""),
    ]
    found = [
        Figure(
            f"{what}, {name} of {calls:,} calls",
            percentile(clock, share) * 1000,
            "ms",
            percentile(floor_clock, share) * 1000,
            target,
        )
        for name, clock, floor_clock, share, target in rows
    ]
    slowest = max(times.wall) * 1000, max(floor.wall) * 1000
    return [*found, Figure(f"{what}, slowest of {calls:,} calls", slowest[0], "ms", slowest[1])]


def bare_connection(path: str) -> sqlite3.Connection:
    """The floor's database: one table, the store's connection settings."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, user_id TEXT, at REAL)")
    return conn


def bare_write(conn: sqlite3.Connection, user_id: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO floor (user_id, at) VALUES (?, ?)", (user_id, time.time()))
    conn.execute("COMMIT")


def enter_all(db: Drumbeat) -> None:
    """One tick's planning and work: every user enters every campaign."""
    programs = Programs(db.store)
    plan_all(db.store, programs, START, full_pass_every=7 * 86400.0)
    executor = make_executor(db.store, programs, 1)
    try:
        list(executor.drain(DEFAULT_LANE, START))
    finally:
        executor.close()


def time_identify(db: Drumbeat, bare: sqlite3.Connection, ids: list[str]) -> tuple[Times, Times]:
    """Each identify's times, and the floor's, a bare write timed just before each."""
    calls, floor = Times(), Times()
    for user in ids:
        floor.time(lambda: bare_write(bare, user))  # noqa: B023 (called at once)
        calls.time(lambda: db.identify(user, {"plan": "pro"}))  # noqa: B023
    return calls, floor
