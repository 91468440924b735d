"""`drumbeat bench capacity`: is the capacity model right? Measure a run at N users, ask the
model (drumbeat.capacity) for 2N, run 2N on a store of its own, a few rounds over (N, 2N,
N, 2N, …, so that the load of the moment on a shared machine weighs on both alike), and
report predicted against measured: the median tick time of the rounds (the floor column
holds the measured figure, so the ratio is predicted / measured; each round's ratio is in
the line), store queries and batches (of the last round: no timing in those).

A run: N users, one campaign (send, wait a day, send) entering them all, then `drumbeat
advance` over two days a tick an hour (`TICKS` ticks, two of them with work), in this
process (one worker), its timings written into the store by a recorder as `drumbeat
advance` does, and read back from there. Both runs use one database, each in a workspace of
its own, removed after it; the database's timings are dropped before each run (a database
the bench may fill).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

from drumbeat.bench.idle import remove
from drumbeat.bench.report import Figure
from drumbeat.campaigns import apply, plan_apply
from drumbeat.capacity import Capacity, Measured, Target, model
from drumbeat.client import Drumbeat
from drumbeat.config import Settings
from drumbeat.metrics import TICK_STAGE
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.clock import StoreClock
from drumbeat.recorder import Recorder
from drumbeat.stats import read_measured
from drumbeat.store import open_store

START = 1_767_571_200.0  # 2026-01-05T00:00:00Z
DAYS = 2
TICKS = DAYS * 24
NOTES = (
    "Here the Drumbeat column is the model's prediction for 2N (from the timings stored by "
    "the run at N) and the raw floor column what the run at 2N measured, the median of the "
    "rounds (N, 2N, N, 2N, …): the ratio is predicted / measured. Wall time on a shared "
    "machine varies from run to run (each round's ratio is in the line); the counts do not."
)
CAMPAIGN = {
    "key": "capacity",
    "name": "capacity",
    "audience": {"attr": "plan", "eq": "free"},
    "steps": [
        {"send": {"id": "one", "channel": "email", "subject": "one", "body": "one"}},
        {"wait": "1d"},
        {"send": {"id": "two", "channel": "email", "subject": "two", "body": "two"}},
    ],
}


def measured_run(url: str, users: int, config: Settings) -> Measured:
    """`users` users through the campaign, a tick an hour for `DAYS` days; what was timed."""
    store = open_store(url)
    StoreClock(store).set(START)
    store.prune_timings(time.time() + 3600)
    store.close()
    workspace = f"bench-capacity-{uuid.uuid4().hex[:8]}"
    own = config.model_copy(update={"database_url": url, "workers": 1, "workspace": workspace})
    with Drumbeat(config=own) as db:
        db.identify_many({"user_id": f"u{n}", "traits": {"plan": "free"}} for n in range(users))
        plan = plan_apply(parse_campaign(CAMPAIGN), db.store, db.ws)
        apply(plan, db.store, db.ws, db.clock(), activate=True)
        recorder = Recorder(db.store, every=3600.0, keep=86400.0)
        try:
            db.advance(START + DAYS * 86400, "1h", workers=1)
        finally:
            recorder.close()
        measured = read_measured(db.store, db.ws, since=3600.0, now=time.time(), workers=1)
        remove(db.store, db.ws)  # the next run's ticks plan its own campaign only
        return measured


def mean_tick(ran: Measured) -> float:
    tick = ran.stages[TICK_STAGE]
    return tick.total / tick.count


def figures(backend: str, users: int, pairs: list[tuple[Capacity, Measured]]) -> list[Figure]:
    """Predicted against measured, the median of the rounds (each round's ratio shown)."""
    predicted = [p.tick_seconds for p, _ in pairs]
    measured = [mean_tick(ran) for _, ran in pairs]
    each = ", ".join(f"{p / m:.2f}" for p, m in zip(predicted, measured, strict=True))
    last, ran = pairs[-1]
    ticks = ran.stages[TICK_STAGE].count
    at = f"{backend}: at {2 * users:,} users (measured at {users:,})"
    return [
        Figure(
            f"{at}, tick time, mean of {ticks} ticks, median of {len(pairs)} rounds"
            f" (each round: {each}×)",
            median(predicted) * 1000,
            "ms",
            median(measured) * 1000,
            "predicted within ±25% (0.75–1.25×)",
        ),
        Figure(
            f"{at}, store queries",
            last.store_queries_per_tick * ticks,
            "queries",
            sum(h.count for h in ran.queries.values()),
            "within ±25%",
        ),
        Figure(
            f"{at}, batches",
            last.batches_per_tick * ticks,
            "",
            ran.stages["stage.batch"].count,
            "exact",
        ),
    ]


def run(url: str, users: int, config: Settings, rounds: int) -> list[Figure]:
    """`rounds` times: measure at `users`, predict twice that, run it (N, 2N, N, 2N, …: the
    load of the moment weighs on both alike)."""
    pairs = []
    for _ in range(rounds):
        small = measured_run(url, users, config)
        target = Target(
            users=2 * users,
            campaigns=small.campaigns,
            events_per_day=0,
            batch_size=config.batch_size,
            tick_interval=config.tick_interval,
            workers=1,
            store_queries_per_second=5000.0,
            cores=1,
        )
        pairs.append((model(small, target), measured_run(url, 2 * users, config)))
    backend = url.split(":", 1)[0].split("+", 1)[0]
    return figures(backend, users, pairs)


def run_all(
    users: int, rounds: int, config: Settings, folder: Path | None, postgres: str | None
) -> list[Figure]:
    found = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        found += run(f"sqlite:///{tmp}/bench.db", users, config, rounds)
    if postgres:
        found += run(postgres, users, config, rounds)
    return found
