"""The executor contract, run against every executor on SQLite and PostgreSQL: a drain runs
every batch of the lane exactly once, whatever the number of workers, and reports it."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drumbeat import metrics
from drumbeat.config import BROKER_HEARTBEAT
from drumbeat.pipeline.executors import Executor, make_executor
from drumbeat.pipeline.executors.celery import CeleryExecutor
from drumbeat.pipeline.executors.child import BACKGROUND_NICE
from drumbeat.pipeline.executors.local import ThreadExecutor
from drumbeat.pipeline.executors.processes import ProcessExecutor, WorkerDied
from drumbeat.pipeline.lane_gate import LaneGate
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.worker import BATCH_LEASE
from drumbeat.store.batch_claims import Batch
from drumbeat.store.core import StoreUnavailable
from drumbeat.store.schema import batches
from tests.e2e.helpers import campaign, retire, send, wait
from tests.e2e.running import wait_for
from tests.workers import Workers, worker_env
from tests.world import DAY, World

USERS = 240
BATCH = 25
DRIP = campaign("drip", [send("one"), wait("1d"), send("two")])
EXECUTORS = ["threads", "threads-2", "processes-2", "celery-2"]


@pytest.fixture
def world(world: World) -> Iterator[World]:
    """USERS users who match DRIP, in batches of BATCH. At the end the campaign is retired
    and what it queued is sent (to this test's file): PostgreSQL tests share a database,
    and a drain or a dispatch works every workspace's batches and messages."""
    world.store.batch_size = BATCH
    world.db.identify_many(
        [{"user_id": f"u{i:03d}", "traits": {"plan": "free"}} for i in range(USERS)]
    )
    world.apply(DRIP)
    try:
        yield world
    finally:
        retire(world)
        world.runner.dispatcher.dispatch(world.now() + 7 * DAY)


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest, world: World, tmp_path: Path) -> Executor:
    kind, _, workers = request.param.partition("-")
    made: Executor
    if kind == "celery":  # `drumbeat worker` processes, through RabbitMQ
        broker = request.getfixturevalue("broker_url")
        env = worker_env(world.config.database_url, broker, tmp_path / "sent.jsonl")
        pool = Workers(env, tmp_path)
        request.addfinalizer(pool.close)
        for _ in range(int(workers)):
            pool.start("fast")
        made = CeleryExecutor(world.store, broker, republish_after=5.0, heartbeat=BROKER_HEARTBEAT)
    elif kind == "threads":
        made = ThreadExecutor(world.store, world.runner.programs, threads=int(workers or 1))
    else:
        made = make_executor(world.store, world.runner.programs, int(workers))
        assert isinstance(made, ProcessExecutor)
    request.addfinalizer(made.close)
    return made


def drain_at(world: World, executor: Executor, now: float) -> Counter[str]:
    """Plan and drain; what the drain did in this test's workspace (PostgreSQL tests share a
    database, where another test may have left a campaign active)."""
    plan_all(world.store, world.runner.programs, now, full_pass_every=7 * DAY)
    reports = executor.drain(DEFAULT_LANE, now)
    assert len({r.batch_id for r in reports}) == len(reports)  # no batch ran twice
    with world.store.engine.connect() as conn:
        ours = set(
            conn.execute(select(batches.c.id).where(batches.c.workspace_id == world.ws)).scalars()
        )
    reports = [r for r in reports if r.batch_id in ours]
    return Counter({"entered": sum(r.entered for r in reports), "batches": len(reports)})


def test_a_drain_runs_every_batch_once(world: World, executor: Executor) -> None:
    done = drain_at(world, executor, world.now())
    assert done == {"entered": USERS, "batches": USERS // BATCH + (USERS % BATCH > 0)}
    assert Counter(r["step_id"] for r in world.outbox()) == {"one": USERS}
    assert drain_at(world, executor, world.now())["entered"] == 0  # members already
    done = drain_at(world, executor, world.now() + DAY)
    assert Counter(r["step_id"] for r in world.outbox()) == {"one": USERS, "two": USERS}
    assert done["entered"] == 0


def test_worker_processes_report_their_timings(world: World) -> None:
    metrics.reset()
    with ProcessExecutor(world.config.database_url, processes=2, batch_size=BATCH) as pool:
        done = drain_at(world, pool, world.now())
    timed = metrics.summaries()["stage.batch"]
    assert timed.count == done["batches"]
    assert timed.items == USERS


def test_a_dead_worker_process_is_replaced(world: World) -> None:
    with ProcessExecutor(world.config.database_url, processes=2, batch_size=BATCH) as pool:
        drain_at(world, pool, world.now())
        first = pool._children[0]
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        done = drain_at(world, pool, world.now() + DAY)  # a new child takes its place
        assert pool._children[0] is not first
    assert done["batches"] == USERS // BATCH + (USERS % BATCH > 0)


def test_a_worker_process_that_cannot_work_says_why(world: World, tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    with (
        ProcessExecutor(missing, processes=1, batch_size=BATCH) as pool,
        pytest.raises(WorkerDied, match="worker process 0"),
    ):
        pool.drain(DEFAULT_LANE, world.now())


@pytest.mark.parametrize("workers", [1, 2])
def test_background_workers_wait_for_the_gate_and_give_way(world: World, workers: int) -> None:
    """A slow lane's workers (with a lane gate) start no batch while the gate is held (the
    fast lane drains), and run every batch once it opens; worker processes run at a lower
    CPU priority, and on SQLite give way to other writers (tests/contract/test_store.py)."""
    gate = LaneGate.make()
    executor = make_executor(world.store, world.runner.programs, workers, gate=gate)
    plan_all(world.store, world.runner.programs, world.now(), full_pass_every=7 * DAY)
    try:
        with gate.held():
            drained: list[Counter[str]] = []
            draining = threading.Thread(
                target=lambda: drained.append(drain_at(world, executor, world.now()))
            )
            draining.start()
            wait_for(lambda: claimed(world) >= 1, "a batch claimed")
            assert done_batches(world) == 0  # claimed, and waiting for the gate
        draining.join(timeout=60)
        assert drained == [{"entered": USERS, "batches": USERS // BATCH + (USERS % BATCH > 0)}]
        if isinstance(executor, ProcessExecutor):
            niceness = {os.getpriority(os.PRIO_PROCESS, c.pid) for c in executor._children}
            assert niceness == {os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICE}
    finally:
        executor.close()
        gate.remove()


def claimed(world: World) -> int:
    return _batches(world, "running") + done_batches(world)


def done_batches(world: World) -> int:
    return _batches(world, "done")


def _batches(world: World, status: str) -> int:
    b = batches.c
    query = select(b.id).where(b.workspace_id == world.ws, b.status == status)
    with world.store.engine.connect() as conn:
        return len(conn.execute(query).all())


def test_an_in_memory_store_is_worked_in_process(world: World, tmp_path: Path) -> None:
    memory = World("sqlite://", "default", tmp_path)
    executor = make_executor(memory.store, memory.runner.programs, 4)
    assert isinstance(executor, ThreadExecutor)
    memory.close()


def test_one_worker_works_two_batches_at_once_on_postgresql_only(world: World) -> None:
    """One worker works in the process, on DRUMBEAT_WORKER_THREADS threads: two on
    PostgreSQL (a batch's Python runs while another's statements run on the server), one on
    SQLite (one writer: threads only wait on each other); the setting, when given, wins."""
    programs = world.runner.programs
    expected = 2 if world.store.dialect == "postgresql" else 1
    runner_fast = world.runner.executor
    assert isinstance(runner_fast, ThreadExecutor) and runner_fast.threads == expected
    three = world.config.model_copy(update={"worker_threads": 3})
    made = make_executor(world.store, programs, 1, three)
    assert isinstance(made, ThreadExecutor) and made.threads == 3


def test_a_thread_whose_claim_fails_fails_the_drain(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second thread's first claim fails (the database went away for longer than
    DRUMBEAT_DB_RETRY_SECONDS): the drain raises it once the other thread is done, rather
    than the thread dying with its traceback printed and the drain returning as if all
    went well; nothing is lost, the next drain finishes the lane."""
    store = world.store
    claim = store.claim_batch
    calls = itertools.count()

    def failing_second(lane: str, lease: float, **given: Any) -> Batch | None:
        if next(calls) == 1:
            raise StoreUnavailable("claiming a batch of fast: the database stayed unreachable")
        return claim(lane, lease, **given)

    monkeypatch.setattr(store, "claim_batch", failing_second)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        drain_at(world, ThreadExecutor(store, world.runner.programs, threads=2), world.now())
    done = drain_at(world, ThreadExecutor(store, world.runner.programs), world.now())
    assert done["entered"] == 0  # the other thread had worked the lane
    assert Counter(r["step_id"] for r in world.outbox()) == {"one": USERS}


def test_processes_on_other_virtual_clocks_leave_a_live_batch_alone(world: World) -> None:
    """Leases count real time: a worker whose virtual clock is a month ahead (another
    `advance`) does not take a batch this process holds, nor the other way round."""
    plan_all(world.store, world.runner.programs, world.now(), full_pass_every=7 * DAY)
    held = world.store.claim_batch(DEFAULT_LANE, BATCH_LEASE)
    assert held is not None
    with ProcessExecutor(world.config.database_url, processes=1, batch_size=BATCH) as ahead:
        reports = ahead.drain(DEFAULT_LANE, world.now() + 30 * DAY)
    assert held.id not in {r.batch_id for r in reports}
    with world.store.engine.connect() as conn:
        status, lease = conn.execute(
            select(batches.c.status, batches.c.lease_until).where(batches.c.id == held.id)
        ).one()
    assert status == "running" and abs(lease - (time.time() + BATCH_LEASE)) < 60
    assert world.store.claim_batch(DEFAULT_LANE, BATCH_LEASE) is None  # not at an earlier clock


CLAIM_AND_EXIT = """
import sys
from drumbeat.store import open_store
print(open_store(sys.argv[1], migrate=False).claim_batch(sys.argv[2], 300.0).id)
"""


def test_a_batch_whose_worker_process_is_gone_runs_at_the_next_drain(
    world: World, executor: Executor
) -> None:
    """A process claims a batch and exits (a run killed whole): the next drain on this host
    lets go of the batch at once instead of waiting out its lease."""
    plan_all(world.store, world.runner.programs, world.now(), full_pass_every=7 * DAY)
    claimed = subprocess.run(
        [sys.executable, "-c", CLAIM_AND_EXIT, world.config.database_url, DEFAULT_LANE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    orphan = int(claimed.stdout)
    reports = executor.drain(DEFAULT_LANE, world.now())
    assert orphan in {r.batch_id for r in reports}
