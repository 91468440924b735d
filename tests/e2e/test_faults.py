"""Runs that survive faults, run as a user runs them (`drumbeat advance --workers 2`): a
worker process killed in the middle of a drain, a batch that kills every worker that takes
it, PostgreSQL terminating the connections; and the planner, which plans no user twice
while an earlier batch of theirs waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from drumbeat.model.attributes import format_timestamp
from drumbeat.pipeline.executors.local import drain
from drumbeat.pipeline.executors.processes import ProcessExecutor
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.store import open_store
from drumbeat.store.connect import _engine
from drumbeat.store.core import StoreUnavailable
from drumbeat.store.schema import batches
from tests.e2e.helpers import campaign, send, wait
from tests.world import DAY, HOUR, World

FAULTS = Path(__file__).parent.parent / "faults"  # its sitecustomize.py injects the faults
USERS = 120
BATCH = 10
DRIP = campaign("drip", [send("one"), wait("1d"), send("two")])


@pytest.fixture
def world(world: World) -> World:
    world.store.batch_size = BATCH
    world.db.identify_many(
        [{"user_id": f"u{i:03d}", "traits": {"plan": "free"}} for i in range(USERS)]
    )
    world.apply(DRIP)
    return world


def advance(
    world: World, tmp: Path, days: float, workers: int = 2, **env: str
) -> subprocess.Popen[bytes]:
    """`drumbeat advance --workers N` by `days` on the world's store, in its own process;
    `env` adds variables (the faults'); its output goes to files in `tmp`."""
    variables = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    variables.update(
        DRUMBEAT_DATABASE_URL=world.config.database_url,
        DRUMBEAT_WORKSPACE=world.config.workspace,
        DRUMBEAT_OUTBOX_FILE=str(tmp / "messages.jsonl"),
        DRUMBEAT_BATCH_SIZE=str(BATCH),
        # the faults first, then the code under test when it is not the installed one (a
        # worktree's: without it, the processes ran the installed checkout's code)
        PYTHONPATH=os.pathsep.join([str(FAULTS), *filter(None, [os.environ.get("PYTHONPATH")])]),
        **env,
    )
    to = format_timestamp(world.now() + days * DAY)
    command = ["advance", "--to", to, "--every", "12h", "--workers", str(workers)]
    with (tmp / "advance.out").open("wb") as out, (tmp / "advance.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "drumbeat", *command], env=variables, stdout=out, stderr=err
        )


def finished(run: subprocess.Popen[bytes], tmp: Path) -> None:
    """Wait for the run to end by itself, and require that it succeeded."""
    code = run.wait(timeout=100)
    assert code == 0, (tmp / "advance.err").read_text()


def until(condition: Callable[[], object], what: str, seconds: float = 60.0) -> object:
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"no {what} after {seconds:g} s"
        time.sleep(0.02)
    return found


def stopped_child(parent: int) -> int | None:
    """A child process of `parent` that is stopped (SIGSTOP), from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] == "T" and int(fields[1]) == parent:
            return int(stat.parent.name)
    return None


def sent(world: World) -> Counter[tuple[str, str]]:
    return Counter((r["step_id"], r["user_id"]) for r in world.outbox())


def every_message(users: list[str]) -> Counter[tuple[str, str]]:
    return Counter({(step, user): 1 for user in users for step in ("one", "two")})


def our_batches(world: World) -> list[tuple[int, str, int, str | None, list[str]]]:
    b = batches.c
    query = (
        select(b.id, b.status, b.attempts, b.last_error, b.user_ids)
        .where(b.workspace_id == world.ws)
        .order_by(b.id)
    )
    with world.store.engine.connect() as conn:
        return [(int(i), s, int(a), e, list(u)) for i, s, a, e, u in conn.execute(query)]


def test_a_worker_process_killed_in_a_drain_loses_nothing_and_the_run_goes_on(world, tmp_path):
    victim = "u042"
    run = advance(
        world,
        tmp_path,
        2,
        DRUMBEAT_FAULT_USER=victim,
        DRUMBEAT_FAULT_SIGNAL="SIGSTOP",  # stops holding its batch, for us to kill
        DRUMBEAT_FAULT_ONCE=str(tmp_path / "stopped"),
    )
    child = until(lambda: stopped_child(run.pid), "stopped worker process")
    assert isinstance(child, int)
    os.kill(child, signal.SIGKILL)
    finished(run, tmp_path)
    assert sent(world) == every_message([f"u{i:03d}" for i in range(USERS)])
    assert {status for _, status, _, _, _ in our_batches(world)} == {"done"}
    killed = next(b for b in our_batches(world) if victim in b[4])  # its entry
    assert killed[2] == 2 and "exited with code -9" in str(killed[3])  # claimed again at once


RELEASE_ORPHANS = """
import sys
from drumbeat.store import open_store
print(*open_store(sys.argv[1], migrate=False).release_orphaned_batches())
"""


def test_a_dead_worker_process_s_batch_is_let_go_of_by_its_executor_before_a_sibling_drain(
    world, tmp_path, monkeypatch
):
    """A worker process dies holding a batch and, before its executor lets go of it, another
    worker process of the executor begins a drain (one slow to start, on a loaded machine),
    which lets go of the batches of gone processes, uncounted (a run killed whole): the
    dead one is not gone to it until the executor has let go of its batch, counted (a
    batch that kills every worker that takes it ends dead), with how it died."""
    victim = "u042"
    monkeypatch.setenv("DRUMBEAT_FAULT_USER", victim)  # SIGKILL, in the first worker only
    monkeypatch.setenv("DRUMBEAT_FAULT_ONCE", str(tmp_path / "killed"))
    code = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAULTS), *filter(None, [code])]))
    url = world.config.database_url
    sibling_released: list[int] = []
    with ProcessExecutor(url, processes=2, batch_size=BATCH) as pool:
        release = pool._release

        def sibling_drain_first(pid: int, why: str) -> dict[int, str]:
            # a child of this process, as the executor's worker processes are
            sibling = [sys.executable, "-c", RELEASE_ORPHANS, url]
            done = subprocess.run(sibling, capture_output=True, text=True, check=True, timeout=60)
            sibling_released.extend(int(batch_id) for batch_id in done.stdout.split())
            return release(pid, why)

        monkeypatch.setattr(pool, "_release", sibling_drain_first)
        plan_all(world.store, world.runner.programs, world.now(), full_pass_every=DAY)
        pool.drain(DEFAULT_LANE, world.now())
    assert Counter(r["user_id"] for r in world.outbox()) == {f"u{i:03d}": 1 for i in range(USERS)}
    killed = next(b for b in our_batches(world) if victim in b[4])
    assert killed[0] not in sibling_released
    assert killed[1:3] == ("done", 2) and "exited with code -9" in str(killed[3])


def test_a_batch_that_kills_every_worker_ends_dead_the_run_goes_on_and_a_retry_runs_it(
    world, tmp_path
):
    poison = "u042"
    run = advance(world, tmp_path, 0.5, DRUMBEAT_FAULT_USER=poison)  # one tick
    finished(run, tmp_path)
    [dead] = [b for b in our_batches(world) if poison in b[4]]
    _, status, attempts, error, lost = dead
    assert (status, attempts) == ("dead", 3)
    assert "exited with code -9" in str(error)
    others = [f"u{i:03d}" for i in range(USERS) if f"u{i:03d}" not in lost]
    assert sent(world) == Counter({("one", user): 1 for user in others})
    assert {b[1] for b in our_batches(world) if b != dead} == {"done"}
    # `drumbeat batches retry` brings it back, and without the fault the next tick runs it
    assert [b.id for b in world.db.retry_batches(all_dead=True)] == [dead[0]]
    # to the next tick (the world's clock reads the store's, which the run moved on by half a
    # day), not the second step
    finished(advance(world, tmp_path, 0.5), tmp_path)
    assert sent(world) == Counter({("one", f"u{i:03d}"): 1 for i in range(USERS)})
    assert {b[1] for b in our_batches(world)} == {"done"}


def terminate_backends(url: str, stop: threading.Event, terminated: list[int]) -> None:
    """Terminate every other connection to the database, every 0.2 s until `stop`."""
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.wait(0.2):
            killed = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            terminated.append(int(killed[0]) if killed else 0)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_whose_postgresql_connections_are_terminated_goes_on(world, tmp_path, workers):
    if world.store.dialect != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    run = advance(world, tmp_path, 3, workers)
    b = batches.c
    started = select(b.id).where(b.workspace_id == world.ws).limit(1)
    with psycopg.connect(world.config.database_url) as conn:  # the run has begun planning
        until(
            lambda: conn.execute(
                str(started.compile(compile_kwargs={"literal_binds": True}))
            ).fetchone(),
            "batch",
        )
    stop, terminated = threading.Event(), []
    killer = threading.Thread(
        target=terminate_backends, args=(world.config.database_url, stop, terminated)
    )
    killer.start()
    try:
        finished(run, tmp_path)
    finally:
        stop.set()
        killer.join()
    assert sum(terminated) >= 3  # connections were lost during the run, a few times
    assert sent(world) == every_message([f"u{i:03d}" for i in range(USERS)])


def test_a_user_in_an_unfinished_batch_is_not_planned_again(world):
    store, programs = world.store, world.runner.programs
    plans = plan_all(store, programs, world.now(), full_pass_every=world.config.full_pass_every)
    assert sum(p.entering for p in plans if p.campaign == "drip") == USERS
    world.store.claim_batch(DEFAULT_LANE, 300.0)  # one is running, the others pending
    for later in (world.now(), world.now() + HOUR):  # the run was killed: planned again
        plans = plan_all(store, programs, later, full_pass_every=world.config.full_pass_every)
        assert [(p.entering, p.advancing, p.batches) for p in plans if p.campaign == "drip"] == [
            (0, 0, 0)
        ]
    world.store.real_clock = lambda: time.time() + 301.0  # the running one's lease ran out
    drain(store, programs, DEFAULT_LANE, world.now)
    assert sent(world) == Counter({("one", f"u{i:03d}"): 1 for i in range(USERS)})
    plans = plan_all(store, programs, world.now() + DAY, full_pass_every=DAY)
    assert [p.advancing for p in plans if p.campaign == "drip"] == [USERS]  # due, once


def test_a_store_out_of_reach_longer_than_the_retry_time_is_a_clear_error(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no connection to lose: its errors are never retried")
    store = open_store(database_url, migrate=False, retry_seconds=0.5)
    # the server goes away once the store is open (opening refuses a URL that cannot work)
    store.engine.dispose()
    store.engine = _engine("postgresql://postgres@127.0.0.1:9/nowhere")
    started = time.monotonic()
    with pytest.raises(
        StoreUnavailable, match=r"unreachable for 0.5 s \(DRUMBEAT_DB_RETRY_SECONDS\)"
    ):
        store.claim_batch(DEFAULT_LANE, 300.0)
    assert time.monotonic() - started >= 0.4  # tried again meanwhile
    store.close()
