"""`drumbeat bench access`: does the user cache pay for itself? On SQLite, CAMPAIGNS active
campaigns whose audience is `plan == free`, and CHANGED of USERS users who came to match it
since the last tick: the tick enters them into every campaign, so each campaign's batches
load the same users. Timed from the same database (a copy each): the tick with no cache
(the floor), with the memory cache, and with Redis if a URL is given. Reported: the store
reads of users (`load_users` and the memory cache's version checks) and seconds, for the
users' loading and for the whole tick."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass

from drumbeat import metrics
from drumbeat.bench.report import Figure
from drumbeat.cache import UserCache
from drumbeat.cache.memory import MemoryCache
from drumbeat.campaigns import apply, plan_apply
from drumbeat.model.campaign import parse_campaign
from drumbeat.model.records import UserRecord
from drumbeat.pipeline.executors import make_executor
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.store import Store, open_store

START = 1_772_409_600.0  # 2026-03-02T00:00:00Z
WEEK = 7 * 86400.0
READS = ("store.load_users", "store.user_versions")


@dataclass
class Measure:
    reads: int
    loading: float  # seconds spent getting users (cache and store)
    tick: float


def definition(n: int) -> dict[str, object]:
    send = {"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hi"}}
    return {
        "key": f"campaign-{n}",
        "name": f"Campaign {n}",
        "audience": {"attr": "plan", "eq": "free"},
        "steps": [send, {"wait": "2d"}],
    }


def prepare(path: str, users: int, changed: int, campaigns: int) -> None:
    """The users, the campaigns after their first tick (nobody matched), then the changes."""
    store = open_store(f"sqlite:///{path}")
    ws = store.workspace_id("default")
    ids = [f"user-{n:07}" for n in range(users)]
    store.write_users(ws, [UserRecord(u, {}, {"plan": "pro"}) for u in ids], START - WEEK)
    for n in range(campaigns):
        campaign = parse_campaign(definition(n))
        apply(plan_apply(campaign, store, ws), store, ws, START, activate=True)
    tick(store, START)
    moved = [UserRecord(u, {}, {"plan": "free"}) for u in ids[:: max(1, users // changed)]]
    store.write_users(ws, moved[:changed], START + 1800)
    store.checkpoint()
    store.close()


def tick(store: Store, now: float) -> float:
    programs = Programs(store)
    executor = make_executor(store, programs, 1)
    began = time.perf_counter()
    try:
        plan_all(store, programs, now, full_pass_every=WEEK)
        list(executor.drain(DEFAULT_LANE, now))
    finally:
        executor.close()
    return time.perf_counter() - began


def measure(path: str, cache: UserCache | None) -> Measure:
    store = open_store(f"sqlite:///{path}", cache=cache)
    try:
        metrics.reset()
        seconds = tick(store, START + 3600)
        found = metrics.summaries()
    finally:
        store.close()
    reads = sum(found[name].count for name in READS if name in found)
    name = "users.load"
    return Measure(reads, found[name].total if name in found else 0.0, seconds)


def run(users: int, changed: int, campaigns: int, redis_url: str | None) -> list[Figure]:
    caches: list[tuple[str, UserCache | None]] = [
        ("no cache", None),
        ("memory cache", MemoryCache(max(users, 1))),
    ]
    if redis_url:
        from drumbeat.cache.redis import RedisCache

        prefix = f"drumbeat-bench-{uuid.uuid4().hex[:8]}:"
        caches.append(("redis cache", RedisCache(redis_url, ttl=600, prefix=prefix)))
    measured: dict[str, Measure] = {}
    with tempfile.TemporaryDirectory() as folder:
        prepare(f"{folder}/base.db", users, changed, campaigns)
        for name, cache in caches:
            copy = f"{folder}/{name.replace(' ', '-')}.db"
            shutil.copyfile(f"{folder}/base.db", copy)
            measured[name] = measure(copy, cache)
    floor = measured["no cache"]
    what = f"{campaigns} campaigns × {changed:,} changed users"
    figures = []
    for name, m in measured.items():
        figures += [
            Figure(f"{name}: store reads of users, {what}", m.reads, "reads", floor.reads),
            Figure(f"{name}: loading the users", m.loading * 1000, "ms", floor.loading * 1000),
            Figure(f"{name}: the whole tick", m.tick, "s", floor.tick),
        ]
    return figures
