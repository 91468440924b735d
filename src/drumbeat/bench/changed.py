"""`drumbeat bench changed`: what a tick costs when 1% of the users changed in one attribute
that one campaign of N reads, against the same share changed in an attribute every campaign
reads, in a warm runner (`Runner.tick`, as `drumbeat run` ticks), on SQLite (and PostgreSQL
if given).

The planner looks at a changed user only for the campaigns whose rules read a name its
writes changed (`store/names.py`). Before that, every write was looked at by every campaign:
a change that every campaign reads costs what any change cost then, so the second tick is
the "before" of the first, measured in the same run. The campaigns are `bench idle`'s (one
cohort each, a tenth of the users members, waiting 30 days), their audience also reading
`plan` (one of two values, both in it); the first campaign's goal also reads `tier`. Rounds
alternate, each on another 1% of the users: their `tier` written (read by one campaign),
a tick timed; their `plan` moved from "free" to "pro" (read by all, no one leaves), a tick
timed. Medians of `ROUNDS` each, with the statements each tick sent. Floors: the same
runner's tick with nothing changed, measured first; and for the first tick, the second."""

from __future__ import annotations

import statistics
import time
import uuid

from drumbeat.bench.idle import START, Measure, remove, timed_ticks
from drumbeat.bench.report import Figure
from drumbeat.bench.statements import counted
from drumbeat.campaigns import apply_all, plan_sources
from drumbeat.config import Settings
from drumbeat.model.attributes import AttrType, Value
from drumbeat.model.campaign import parse_campaign
from drumbeat.model.records import UserRecord
from drumbeat.pipeline.runner import Runner
from drumbeat.store import Store, open_store

ROUNDS = 5
SHARE = 100  # one user in SHARE changes a round: 1%
WRITE_CHUNK = 10_000
PLANS = ("free", "pro")
TYPES = {"plan": AttrType.STRING, "cohort": AttrType.NUMBER, "tier": AttrType.STRING}


def campaign(n: int) -> dict[str, object]:
    doc: dict[str, object] = {
        "key": f"changed-{n:05d}",
        "name": f"Cohort {n}",
        "audience": {"all": [{"attr": "cohort", "eq": n}, {"attr": "plan", "in": list(PLANS)}]},
        "steps": [
            {"wait": "30d"},
            {"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hello"}},
        ],
    }
    if n == 0:
        doc["goal"] = {"rule": {"attr": "tier", "eq": "gold"}}
    return doc


def load(store: Store, ws: int, users: int, cohorts: int) -> None:
    for start in range(0, users, WRITE_CHUNK):
        records = [
            UserRecord(f"u{i:08d}", {}, {"plan": "free", "cohort": i % cohorts})
            for i in range(start, min(users, start + WRITE_CHUNK))
        ]
        store.write_users(ws, records, START, new_types=TYPES)


def write(store: Store, ws: int, ids: range, values: dict[str, Value | None], now: float) -> None:
    """The users `ids` given `values`, in one transaction."""
    store.write_users(ws, [UserRecord(f"u{i:08d}", {}, dict(values)) for i in ids], now)


def changed_tick(
    runner: Runner, ws: int, ids: range, values: dict[str, Value | None], now: float
) -> tuple[Measure, float]:
    """The users `ids` given `values`, then the next tick, timed; then a tick untimed two
    minutes on, so that the watermarks (a minute behind each tick) pass these writes and the
    next timed tick sees only its own."""
    write(runner.store, ws, ids, values, now + 60)
    now += 120
    with counted(runner.store.engine) as seen:
        began = time.perf_counter()
        runner.tick(now)
        seconds = time.perf_counter() - began
    now += 120
    runner.tick(now)
    return Measure(seconds, 0.0, seen.count), now


def run(url: str, users: int, campaigns: int, config: Settings) -> list[Figure]:
    """One backend: the idle tick, then the rounds."""
    store = open_store(url, batch_size=config.batch_size)
    backend = store.dialect
    ws = store.workspace_id(f"bench-{uuid.uuid4().hex[:8]}", now=START)
    runner = Runner(store, config, workers=1)
    one: list[Measure] = []
    every: list[Measure] = []
    try:
        load(store, ws, users, campaigns * 10)
        if store.dialect == "postgresql":  # as autovacuum would, soon after an import
            with store.writing() as conn:
                conn.exec_driver_sql("ANALYZE users")
        now = START + 86_400
        sources = [(f"campaign {n}", parse_campaign(campaign(n))) for n in range(campaigns)]
        apply_all(plan_sources(sources, store, ws), store, ws, now, activate=True)
        for _ in range(3):  # the first full pass and its batches, then quiet ticks
            now += 60
            runner.tick(now)
        idle, now = timed_ticks(runner, now)
        for r in range(ROUNDS):
            ids = range(r, users, SHARE)
            measured, now = changed_tick(runner, ws, ids, {"tier": f"t{r}"}, now)
            one.append(measured)
            # each round's users were all "free": every one of them changes
            measured, now = changed_tick(runner, ws, ids, {"plan": PLANS[1]}, now)
            every.append(measured)
    finally:
        runner.close()
        remove(store, ws)
        store.close()
    changed = len(range(0, users, SHARE))
    ms = {name: statistics.median(m.seconds for m in ms) * 1000 for name, ms in
          (("one", one), ("every", every))}  # fmt: skip
    statements = {name: statistics.median(m.statements for m in ms) for name, ms in
                  (("one", one), ("every", every))}  # fmt: skip
    head = f"{backend}: tick, {changed:,} of {users:,} users changed ({campaigns:,} campaigns)"
    return [
        Figure(f"{head} in an attribute 1 campaign reads", ms["one"], "ms", idle.seconds * 1000),
        Figure(
            f"{head} in an attribute every campaign reads (what any change cost before)",
            ms["every"],
            "ms",
            idle.seconds * 1000,
        ),
        Figure(
            f"{backend}: that tick, read by 1 campaign (floor: read by all {campaigns:,})",
            ms["one"],
            "ms",
            ms["every"],
            "≪ 1× (only where the change is read)",
        ),
        Figure(
            f"{backend}: statements of that tick, read by 1 (floor: read by all)",
            statements["one"],
            "statements",
            statements["every"],
        ),
    ]
