"""The distributed shape as docs/deploy.md runs it: `drumbeat run --scheduler-only` and
`drumbeat worker --lane …` processes on one store and one RabbitMQ (a vhost of this test
session's own), on the real clock. A campaign of two sends a few seconds apart goes through
them; workers are killed, RabbitMQ drops every connection, the queues are purged: every user
ends with exactly its two messages, no outbox key twice, no batch unfinished."""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select

from drumbeat.model.attributes import format_timestamp
from drumbeat.store import open_store
from drumbeat.store.schema import batches
from tests.conftest import purge_queues
from tests.e2e.helpers import FREE, send, wait
from tests.e2e.running import (
    DRUMBEAT,
    delivered,
    environment,
    leftovers_killed,
    outbox_rows,
    own_database,
    own_store,
    prepare,
    start,
)
from tests.e2e.test_docs import ROOT
from tests.workers import Workers
from tests.world import DAY, HOUR, MONDAY

STEPS = ["one", "two"]
WAIT = "3s"
# the kill storm's wait: the storm lasts at least this long, so it kills five workers or more
# however quickly the 20,000 users' messages go (on a quiet machine, in seconds)
STORM_WAIT = "12s"


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    with own_store(database_url) as own:
        yield own


STAYS_FAST = "100000"  # ms a user: a campaign's batches never cost that, however loaded


def shape_env(url: str, broker: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The settings every process of the shape gets (docs/deploy.md): the store, the broker."""
    return environment(
        url,
        tmp_path / "messages.jsonl",
        broker_url=broker,
        broker_republish_after="2",
        tick_interval="0.5",
        **settings,
    )


def until(
    condition: Callable[[], bool], what: str, deadline: float, *checks: Callable[[], None]
) -> None:
    """Poll `condition` until it holds, failing after `deadline` seconds; `checks` run at
    each poll (the scheduler still running, say)."""
    give_up = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < give_up, f"gave up waiting for {what}"
        for check in checks:
            check()
        time.sleep(0.2)


def all_sent(url: str, users: int) -> bool:
    rows = outbox_rows(url)
    return len(rows) == len(STEPS) * users and all(r["status"] == "sent" for r in rows)


def all_done(url: str, users: int) -> bool:
    """Every message sent and every batch finished (the ticks after the last send still
    plan batches: the members' ends)."""
    return all_sent(url, users) and unfinished(url) == {}


def alive(process: subprocess.Popen[bytes], log: Path) -> Callable[[], None]:
    def check() -> None:
        assert process.poll() is None, log.read_text()

    return check


def unfinished(url: str) -> dict[str, int]:
    store = open_store(url, migrate=False)
    b = batches.c
    try:
        with store.engine.connect() as conn:
            query = select(b.status, func.count()).group_by(b.status)
            return {s: n for s, n in conn.execute(query) if s not in ("done", "skipped")}
    finally:
        store.close()


def assert_exact(url: str, users: int, tmp_path: Path) -> None:
    """Every user has exactly its two messages, sent; no key twice; every batch finished."""
    rows = outbox_rows(url)
    assert len({r["dedupe_key"] for r in rows}) == len(rows)
    assert Counter((r["user_id"], r["step_id"]) for r in rows) == {
        (f"u{n}", step): 1 for n in range(users) for step in STEPS
    }
    assert {r["status"] for r in rows} == {"sent"}
    assert unfinished(url) == {}
    sent = {m["message_id"] for m in delivered(tmp_path / "messages.jsonl")}
    assert sent == {r["dedupe_key"] for r in rows}


def reconnected(logs: Path) -> bool:
    """Every worker (their logs in `logs`) saw its connection lost (and tries again)."""
    return all("Connection to broker lost" in w.read_text() for w in logs.glob("worker-*.log"))


def scheduler(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "scheduler.log"
    return start(["run", "--scheduler-only"], env, log), log


def deployed() -> list[list[str]]:
    """The commands of docs/deploy.md's block for one machine, each a process's arguments."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    (block,) = re.findall(
        r"<!-- run-by: tests/e2e/test_distributed.py[^>]*-->\n```sh\n(.*?)```", doc, re.S
    )
    lines = [line.removesuffix("&").split() for line in block.splitlines()]
    assert all(line[0] == "drumbeat" for line in lines), block
    return [line[1:] for line in lines]


def test_the_deployed_processes_run_a_campaign(url: str, broker_url: str, tmp_path: Path) -> None:
    """Exactly the processes of docs/deploy.md: a scheduler, a worker per lane."""
    users = 300
    prepare(url, [send("one"), wait(WAIT), send("two")], users)
    env = shape_env(url, broker_url, tmp_path, batch_size="50")
    (upgrade, schedule, *workers) = deployed()
    assert (upgrade, schedule) == (["db", "upgrade"], ["run", "--scheduler-only"])
    assert (
        subprocess.run([DRUMBEAT, *upgrade], env=env, capture_output=True, timeout=60).returncode
        == 0
    )
    process = start(schedule, env, tmp_path / "scheduler.log")
    for n, command in enumerate(workers):
        start(command, env, tmp_path / f"worker-{n}.log")
    lanes = {command[command.index("--lane") + 1] for command in workers}
    assert lanes == {"fast", "slow", "dispatch"}
    until(
        partial(all_done, url, users),
        "every message sent",
        120,
        alive(process, tmp_path / "scheduler.log"),
    )
    assert_exact(url, users, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_kill_storm_of_workers_loses_nothing(url: str, broker_url: str, tmp_path: Path) -> None:
    """Two workers per lane; every 2 s a random one is SIGKILLed (its whole group) and a new
    one started, until every message is sent (20,000 users)."""
    users = 20_000
    prepare(url, [send("one"), wait(STORM_WAIT), send("two")], users)
    env = shape_env(url, broker_url, tmp_path, batch_size="100")
    pool = Workers(env, tmp_path)
    chance = random.Random(10)
    kills = 0
    try:
        for lane in ("fast", "slow", "dispatch") * 2:
            pool.start(lane)
        process, log = scheduler(env, tmp_path)
        give_up = time.monotonic() + 300
        while not all_done(url, users):
            assert time.monotonic() < give_up, "gave up waiting for every message sent"
            alive(process, log)()
            time.sleep(2)
            lane, victim = chance.choice(pool.running)
            pool.kill(victim)
            pool.start(lane)
            kills += 1
    finally:
        pool.close()
    assert kills >= 5, "the campaign finished before the storm: more users"
    assert_exact(url, users, tmp_path)


@pytest.mark.timeout(300)
def test_dropped_connections_and_a_purge_lose_nothing(
    url: str, broker_url: str, rabbit_vhost: str, tmp_path: Path
) -> None:
    """RabbitMQ closes every connection of the vhost mid-campaign, then the queues are purged:
    the workers reconnect, the scheduler publishes the lost batches again."""
    users = 1000
    prepare(url, [send("one"), wait(WAIT), send("two")], users)
    env = shape_env(url, broker_url, tmp_path, batch_size="50")
    pool = Workers(env, tmp_path)
    try:
        for lane in ("fast", "dispatch"):
            pool.start(lane)
        process, log = scheduler(env, tmp_path)
        until(lambda: len(outbox_rows(url)) > 0, "the first messages", 120, alive(process, log))
        assert not all_sent(url, users)  # mid-campaign
        subprocess.run(
            ["rabbitmqctl", "close_all_connections", "--vhost", rabbit_vhost, "test"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        until(partial(reconnected, tmp_path), "the workers' reconnections", 60)
        purge_queues(broker_url)
        until(partial(all_done, url, users), "every message sent", 180, alive(process, log))
    finally:
        pool.close()
    assert_exact(url, users, tmp_path)


@contextmanager
def fresh_store(database_url: str, tmp_path: Path, name: str) -> Iterator[str]:
    """A store of its own, on the database of `database_url`."""
    if database_url.startswith("sqlite"):
        with leftovers_killed():
            yield f"sqlite:///{tmp_path / name}.db"
        return
    with own_database(database_url) as own, leftovers_killed():
        yield own


@pytest.mark.timeout(300)
def test_both_shapes_queue_the_same_outbox(
    database_url: str, broker_url: str, tmp_path: Path
) -> None:
    """The same users and campaign, `drumbeat advance` through a day of hourly ticks, in the
    embedded shape and through two `drumbeat worker` processes: the same outbox, row for row
    (keys, steps, users, the ticks they were queued and sent at)."""
    users = 120
    arrivals = {n: MONDAY + 30 + 10 * HOUR * n / users for n in range(users)}
    outboxes = []
    for shape in ("embedded", "distributed"):
        with fresh_store(database_url, tmp_path, shape) as url:
            prepare(
                url,
                [send("one"), wait("4h"), send("two")],
                users,
                at=MONDAY,
                traits=lambda n: {"created_at": format_timestamp(arrivals[n])},
                audience={"all": [FREE, {"attr": "created_at", "before": "1h ago"}]},
            )
            settings = {"broker_url": broker_url} if shape == "distributed" else {}
            # only fast workers: the campaign must not move to the slow lane when a loaded
            # machine makes its batches cost over 5 ms a user
            env = environment(
                url,
                tmp_path / f"{shape}.jsonl",
                batch_size="10",
                lane_slow_above_ms=STAYS_FAST,
                **settings,
            )
            pool = Workers(env, tmp_path)
            try:
                if shape == "distributed":
                    pool.start("fast")
                    pool.start("fast")
                command = ["advance", "--to", format_timestamp(MONDAY + DAY), "--every", "1h"]
                advance = start(command, env, tmp_path / f"{shape}.log")
                assert advance.wait(timeout=240) == 0, (tmp_path / f"{shape}.log").read_text()
            finally:
                pool.close()
            outboxes.append(outbox_rows(url))
    embedded, distributed = outboxes
    worked = "".join(log.read_text() for log in tmp_path.glob("worker-*.log"))
    assert "Task drumbeat.batch" in worked  # the batches went through the workers
    assert len(embedded) == 2 * users
    assert sorted(embedded, key=str) == sorted(distributed, key=str)


def test_a_worker_serves_its_metrics_and_records_its_timings(
    url: str, broker_url: str, tmp_path: Path
) -> None:
    """`drumbeat worker --metrics-port`: its pool's processes' counts at /metrics (multiprocess
    mode), and their timings in the store for `drumbeat stats`, like `drumbeat run`'s."""
    from tests.e2e.test_observability import free_port, scraped

    users = 40
    env = fast_only(url, broker_url, tmp_path, users, stats_flush_seconds="0.5")
    port = free_port()
    worker_log = tmp_path / "worker-fast.log"
    start(["worker", "--lane", "fast", "--metrics-port", str(port)], env, worker_log)
    start(["worker", "--lane", "dispatch"], env, tmp_path / "worker-dispatch.log")
    process, log = scheduler(env, tmp_path)
    done = {"lane": "fast", "outcome": "done"}
    # waits on batches done, not on users: a batch redone on a loaded machine (its lease ran
    # out) counts its users once per try, so the users' count may pass `users`; and a tick
    # looks again at users written in the last minute (WATERMARK_LAG), so a batch of members
    # already in (deciding nothing) may come after the four
    until(
        lambda: scraped(port, "drumbeat_batches_total", **done) >= users // 10,
        "metrics",
        90,
        alive(process, log),
    )
    assert scraped(port, "drumbeat_batch_users_total", lane="fast") >= users
    until(lambda: stage_batches(env) >= users // 10, "timings", 60)


def fast_only(
    url: str, broker_url: str, tmp_path: Path, users: int, **settings: str
) -> dict[str, str]:
    """A campaign of one send to `users` users, whose batches of 10 stay in the fast lane."""
    prepare(url, [send("one")], users)
    return shape_env(
        url, broker_url, tmp_path, batch_size="10", lane_slow_above_ms=STAYS_FAST, **settings
    )


def stage_batches(env: dict[str, str]) -> int:
    """The batches `drumbeat stats` counts so far: none before the first flush of timings."""
    from tests.e2e.test_stats import stats

    lines = stats(env, "--by", "stage")["names"]
    return sum(line["count"] for line in lines if line["name"] == "stage.batch")


def test_a_stopped_worker_writes_its_last_timings(
    url: str, broker_url: str, tmp_path: Path
) -> None:
    """SIGTERM to `drumbeat worker`: its pool's processes leave through `os._exit`, which runs
    no `atexit` hook; what they measured since their last flush reaches the store anyway
    (here all of it: they would flush once an hour)."""
    users = 40
    env = fast_only(url, broker_url, tmp_path, users, stats_flush_seconds="3600")
    log = tmp_path / "worker-fast.log"
    worker = start(["worker", "--lane", "fast"], env, log)
    process, scheduler_log = scheduler(env, tmp_path)
    until(
        lambda: len(outbox_rows(url)) == users,
        "messages queued",
        90,
        alive(process, scheduler_log),
    )
    assert stage_batches(env) == 0  # nothing flushed while it works
    worker.terminate()  # the main process only, as a service manager's stop
    assert worker.wait(timeout=60) == 0, log.read_text()
    assert stage_batches(env) >= users // 10
