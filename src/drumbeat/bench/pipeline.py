"""`drumbeat bench pipeline`: the broker's share of a batch in the distributed shape. Per
batch of `batch_size` users (1,000 by default), the work the shape adds: publishing the
batch's message to RabbitMQ (publisher confirms), taking it from the queue and acking it,
and claiming the batch by id in the store; next to the batch's own work (load, engine,
commit: `process_batch`), in the same run. Target: the added part ≤ 5% of the whole.

Every other batch is claimed by the claim's statement alone instead (`BareClaim`): no pool,
no writers' turn, no retry, its parameters bound outside the time taken (its row, the
batch's ids, read and parsed within it: any claim must). With it, the share is the shape's
floor here: what publishing, delivering, acking and one write of the batch's row cost
whatever the code around them.

The batches are published as the scheduler publishes a pass's batches (`ConfirmedPublisher`:
one round, confirmed together, on the connection the scheduler keeps from one round to the
next, opened before), and the round's time is shared among them; then each is
taken from the queue, acked, claimed and worked, one at a time. A run is one process
(`measure`), so its figures hold the broker and the store and nothing else: no worker
start-up, no polling; the runs follow one another (`run`). The messages go through a queue
of the bench's own (`drumbeat.bench`, a quorum queue like the lanes', deleted at the end), so
a broker in use loses nothing to it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import make_url

from drumbeat.bench.engine import START, load_users
from drumbeat.bench.report import Figure
from drumbeat.campaigns import apply, plan_apply
from drumbeat.config import BROKER_HEARTBEAT
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.executors.celery_app import BATCH_TASK, celery_app
from drumbeat.pipeline.executors.confirms import ConfirmedPublisher
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.pipeline.worker import BATCH_LEASE, process_batch
from drumbeat.store import Store, open_store
from drumbeat.store.batch_claims import CLAIM_BY_ID, Batch
from drumbeat.store.driver_statement import driver_statement
from drumbeat.store.owners import claim_owner
from drumbeat.store.schema import batches as batches_table

QUEUE = "drumbeat.bench"
FULL_PASS = 7 * 86400.0
CAMPAIGN = {
    "key": "bench",
    "name": "bench",
    "audience": {"attr": "plan", "eq": "free"},
    "steps": [{"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hello"}}],
}


def run(
    database_url: str, broker_url: str, batches: int, batch_size: int, runs: int
) -> list[Figure]:
    """`measure` `runs` times, each in a process of its own, one after the other; the
    median of each part over every batch of every run. A run's figures move together, by
    up to half, from one process to the next (its claim 0.3 or 0.6 ms throughout): as
    pyperf runs a benchmark in several processes, so that one's luck is not the result."""
    spec = {"url": database_url, "broker": broker_url, "batches": batches, "size": batch_size}
    measured = [in_a_process(spec) for _ in range(runs)]
    pooled = Parts(
        statistics.mean(p.publish for p in measured),
        *([s for p in measured for s in getattr(p, part)] for part in PER_BATCH),
    )
    dialect = make_url(database_url).get_backend_name()
    return figures(dialect, batch_size, pooled, [share(p) for p in measured])


def in_a_process(spec: dict[str, Any]) -> Parts:
    done = subprocess.run(
        [sys.executable, "-m", "drumbeat.bench.pipeline", orjson.dumps(spec).decode()],
        stdout=subprocess.PIPE,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a run of the pipeline bench failed (exit {done.returncode})")
    return Parts(**orjson.loads(done.stdout))


def measure(database_url: str, broker_url: str, batches: int, batch_size: int) -> Parts:
    """Plan `batches` batches of `batch_size` users on `database_url` and take each through
    the broker at `broker_url`, then work it: the seconds of each part."""
    from kombu.entity import Queue

    store = open_store(database_url, batch_size=batch_size)
    ws = store.workspace_id(f"bench-{uuid.uuid4().hex[:8]}")
    app = celery_app(broker_url)
    publisher = ConfirmedPublisher(app, heartbeat=BROKER_HEARTBEAT)
    queue = Queue(QUEUE, routing_key=QUEUE, queue_arguments={"x-queue-type": "quorum"})
    deliver: list[float] = []
    claim: list[float] = []
    bare_claim: list[float] = []
    work: list[float] = []
    try:
        now = START
        load_users(store, ws, batches * batch_size)
        apply(plan_apply(parse_campaign(CAMPAIGN), store, ws), store, ws, now, activate=True)
        programs = Programs(store)
        plan_all(store, programs, now, full_pass_every=FULL_PASS)
        ids = own_batch_ids(store, ws, batches)
        with app.connection_for_write() as conn:
            inbox = conn.SimpleQueue(queue)
            rounds = [[i] for i in ids]  # through the default exchange, to the bench's queue
            publisher.open()
            publish = timed(
                partial(publisher.send, BATCH_TASK, rounds, exchange="", routing_key=QUEUE)
            )
            bare = BareClaim(store)
            for i, batch_id in enumerate(ids):
                deliver.append(timed(partial(take, inbox)))
                values = store.claim_values(claim_owner(), BATCH_LEASE, batch_id=batch_id)
                if i % 2:
                    seconds, batch = bare.claim(values)
                    bare_claim.append(seconds)
                else:
                    started = time.perf_counter()
                    found = store.claim_batch_id(batch_id, BATCH_LEASE, owner=values["claim_owner"])
                    claim.append(time.perf_counter() - started)
                    assert found is not None
                    batch = found
                work.append(timed(partial(process_batch, store, programs, batch, batch.due_at)))
            bare.close()
            inbox.close()
            queue.bind(conn.default_channel).delete()
    finally:
        for row in store.campaigns(ws):  # nothing of the bench is planned again
            store.set_campaign_status(ws, row.key, "archived", START)
        publisher.close()
        app.close()
        store.close()
    return Parts(publish / len(ids), deliver, claim, bare_claim, work)


def own_batch_ids(store: Store, ws: int, limit: int) -> list[int]:
    """The bench workspace's pending batches, oldest first: not `claimable_batch_ids`, which
    reads every workspace (a crashed run's batches, a deployment's)."""
    b = batches_table.c
    query = (
        select(b.id)
        .where(b.workspace_id == ws, b.status == "pending", b.lane == DEFAULT_LANE)
        .order_by(b.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [int(i) for i in conn.execute(query).scalars()]


class BareClaim:
    """The claim's floor: its one statement (`CLAIM_BY_ID`) on a connection kept for it, in
    autocommit (on PostgreSQL without waiting for the WAL flush, as the store's claim)."""

    def __init__(self, store: Store) -> None:
        self.run = driver_statement(CLAIM_BY_ID, store.engine.dialect)
        self.pooled = store.engine.raw_connection()
        raw: Any = self.pooled.driver_connection
        if store.dialect == "postgresql":
            raw.autocommit = True
            raw.execute("SET synchronous_commit TO OFF")
        self.raw = raw

    def claim(self, values: dict[str, Any]) -> tuple[float, Batch]:
        """Seconds the statement took to claim the batch `values` name, and the batch."""
        params = self.run.params(values)
        started = time.perf_counter()
        cursor = self.raw.execute(self.run.sql, params)
        row = self.run.converted(cursor.fetchall()[0], cursor.description)  # its ids parsed
        seconds = time.perf_counter() - started
        return seconds, Batch(*row[:-1])

    def close(self) -> None:
        self.pooled.invalidate()  # not back to the pool: its settings are not the pool's


def take(inbox: Any) -> None:
    """Take the next batch's message from the queue and ack it."""
    inbox.get(timeout=30).ack()


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@dataclass
class Parts:
    """Seconds: `publish` a batch's share of the round; the rest one per batch measured."""

    publish: float
    deliver: list[float]
    claim: list[float]
    bare_claim: list[float]
    work: list[float]


PER_BATCH = ("deliver", "claim", "bare_claim", "work")


@dataclass
class Medians:
    """Milliseconds: the medians of a `Parts`."""

    publish: float
    deliver: float
    claim: float
    bare_claim: float
    work: float

    @classmethod
    def of(cls, parts: Parts) -> Medians:
        per_batch = {name: median_ms(getattr(parts, name)) for name in PER_BATCH}
        return cls(publish=1000 * parts.publish, **per_batch)

    def broker(self, claim: float) -> float:
        return self.publish + self.deliver + claim

    def shares(self) -> tuple[float, float]:
        """The broker's share of a batch, in %, with Drumbeat's claim and with the bare
        one."""
        added, floor = self.broker(self.claim), self.broker(self.bare_claim)
        return 100 * added / (added + self.work), 100 * floor / (floor + self.work)


def share(parts: Parts) -> float:
    """The broker's share of a batch, in %, with Drumbeat's claim."""
    return Medians.of(parts).shares()[0]


def figures(dialect: str, size: int, parts: Parts, runs: list[float]) -> list[Figure]:
    """The medians of `parts` (pooled over the runs, whose shares are `runs`)."""
    ms = Medians.of(parts)
    share_added, share_floor = ms.shares()
    batches = len(parts.work)
    each = ", ".join(f"{r:.1f}" for r in runs)
    return [
        Figure(
            f"{dialect}: publish, per batch (rounds of {batches // len(runs)}, confirmed "
            "together, on a kept connection)",
            ms.publish,
            "ms",
        ),
        Figure(f"{dialect}: deliver + ack, per batch", ms.deliver, "ms"),
        Figure(
            f"{dialect}: claim by id, per batch / its statement alone on a kept connection "
            f"(every other batch)",
            ms.claim,
            "ms",
            floor=ms.bare_claim,
        ),
        Figure(f"{dialect}: a {size:,}-user batch's work (load, engine, commit)", ms.work, "ms"),
        Figure(
            f"{dialect}: a batch through the broker (all of the above) / its work alone, "
            f"median of {batches} in {len(runs)} processes",
            ms.broker(ms.claim) + ms.work,
            "ms",
            floor=ms.work,
            target="≤ 1.05×",
        ),
        Figure(
            f"{dialect}: the broker's share (publish, deliver, ack, claim) of a batch / "
            f"the same with the claim's statement alone (each process's: {each} %)",
            share_added,
            "%",
            floor=share_floor,
            target="≤ 5%",
        ),
    ]


def median_ms(seconds: list[float]) -> float:
    return 1000 * statistics.median(seconds)


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    parts = measure(spec["url"], spec["broker"], spec["batches"], spec["size"])
    sys.stdout.buffer.write(orjson.dumps(asdict(parts)))


if __name__ == "__main__":
    main()
