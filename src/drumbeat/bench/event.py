"""`drumbeat bench event`: identify → decision, on SQLite. USERS users are members of
CAMPAIGNS active campaigns whose goal is `plan == pro`; each timed call is one
`Drumbeat.identify(user, {"plan": "pro"})`, which converts the user in every campaign in the
same call (the one-user event path). The floor, in the same run: the same identify of
other members with the event path off (DRUMBEAT_EVENT_PATH_USERS=0), the plain write."""

from __future__ import annotations

import statistics
import tempfile
import time

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


def run(users: int, campaigns: int) -> list[Figure]:
    with tempfile.TemporaryDirectory() as folder:
        config = settings(database_url=f"sqlite:///{folder}/bench.db", workspace="bench")
        with Drumbeat(config=config) as db:
            StoreClock(db.store).set(START)
            db.clock = StoreClock(db.store)
            ids = [f"user-{n:07}" for n in range(2 * users)]
            db.identify_many({"user_id": u, "traits": {"plan": "free"}} for u in ids)
            for n in range(campaigns):
                campaign = parse_campaign(definition(n))
                apply(plan_apply(campaign, db.store, db.ws), db.store, db.ws, START, activate=True)
            enter_all(db)
            event_path = time_identify(db, ids[:users])
            db.event_path.max_users = 0
            floor = time_identify(db, ids[users:])
            converted = db.members(f"upsell-{campaigns - 1}", str(State.CONVERTED), limit=None)
            if len(converted) != users:  # the event path decided in every timed call
                raise RuntimeError(f"{len(converted)} of {users} users converted, not all")
    return [
        Figure(
            f"identify → decision, {campaigns} campaigns, {name} of {users:,} calls",
            percentile(event_path[clock], share) * 1000,
            "ms",
            percentile(floor[clock], share) * 1000,
            target,
        )
        for clock, name, share, target in (
            (0, "p50", 0.5, ""),
            (0, "p99", 0.99, "p99 ≤ 5 ms"),
            (1, "CPU p50", 0.5, ""),
            (1, "CPU p99", 0.99, ""),
        )
    ]


def enter_all(db: Drumbeat) -> None:
    """One tick's planning and work: every user enters every campaign."""
    programs = Programs(db.store)
    plan_all(db.store, programs, START, full_pass_every=7 * 86400.0)
    executor = make_executor(db.store, programs, 1)
    try:
        list(executor.drain(DEFAULT_LANE, START))
    finally:
        executor.close()


def time_identify(db: Drumbeat, ids: list[str]) -> tuple[list[float], list[float]]:
    """Each call's wall and CPU seconds (CPU: less swayed by a busy machine's scheduling)."""
    wall, cpu = [], []
    for user in ids:
        start, started = time.perf_counter(), time.process_time()
        db.identify(user, {"plan": "pro"})
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - started)
    return wall, cpu
