"""`drumbeat bench engine --postgres URL` with DRUMBEAT_BROKER_URL set: the first tick on
PostgreSQL, the store of the distributed shape, through Celery workers.

N users who all match a campaign are loaded into a fresh database on `URL`'s server. The
first tick (planning, then every batch: entry and the first message queued) is timed until
the batches table says every batch is done, its batches worked by `drumbeat worker --lane
fast` processes the benchmark starts (as docs/deploy.md runs them) and stops. The floor, in
the same run on a copy of the loaded database: plain SQL doing the same data work, the
users COPYed out, their memberships and outbox rows COPYed in, in transactions of a batch's
size, in one connection; run before the ticks and after them, the faster of the two is the
floor (the machine is shared: the load others put on it moves a run 2x). Each figure runs
on a copy of its own (`CREATE DATABASE … TEMPLATE`), so no run finds another's rows or dead
tuples.

The workers consume the lane's queue on DRUMBEAT_BROKER_URL's vhost: the benchmark refuses
to start if another worker consumes it already (it would take the benchmark's messages and
claim the batches in its own store). The queues and exchanges it declared there are deleted
at the end (`broker.py`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson

from drumbeat.bench.broker import broker_left_as_found
from drumbeat.bench.databases import fresh_database
from drumbeat.bench.engine import CAMPAIGN, START, load_users
from drumbeat.bench.report import Figure
from drumbeat.bench.startup import drumbeat_argv
from drumbeat.campaigns import apply, plan_apply
from drumbeat.config import BROKER_HEARTBEAT
from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.executors.celery import CeleryExecutor
from drumbeat.pipeline.executors.celery_app import queue_name, queues
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.store import open_store

READY_SECONDS = 120.0  # for the workers to start consuming
USERS_OUT = (
    "COPY (SELECT user_id, email FROM users"
    " WHERE workspace_id = %s AND attributes ->> 'plan' = 'free') TO STDOUT"
)
MEMBERSHIPS_IN = (
    "COPY memberships (workspace_id, campaign_key, user_id, state, position, entry_count,"
    " entered_at, step_started_at, next_due_at, last_sent_at, last_step, attributed, version)"
    " FROM STDIN"
)
OUTBOX_IN = (
    "COPY outbox (workspace_id, dedupe_key, campaign_key, step_id, user_id, entry_count,"
    " channel, payload, status, attempts, available_at, created_at) FROM STDIN"
)


def run(
    url: str, broker_url: str, users: int, workers: list[int], batch_size: int, folder: Path
) -> list[Figure]:
    """The floor, then the first tick with each number of `workers`, on copies of one
    database of `users` users made on `url`'s server."""
    with fresh_database(url, "engine_users") as loaded:
        store = open_store(loaded, batch_size=batch_size)
        ws = store.workspace_id("default")
        load_users(store, ws, users)
        store.close()  # a template has no connections
        floors = [floor_on_copy(url, loaded, ws, batch_size)]
        ticks = []
        with broker_left_as_found(broker_url):
            for n in workers:
                with fresh_database(url, f"engine_tick{n}", template=loaded) as copy:
                    tick = first_tick(copy, broker_url, users, n, batch_size, folder)
                ticks.append((n, *tick))
        floors.append(floor_on_copy(url, loaded, ws, batch_size))
    raw = min(floors)  # the faster: on a shared machine, the one that met less load
    what = f"postgresql: first tick, entry + first message, {users:,} users"
    figures = []
    for n, planning, took in ticks:
        figures += [
            Figure(
                f"{what}, {n} Celery worker{'s' if n > 1 else ''} (fast lane)",
                users / took,
                "users/s",
                users / raw,
                "≥ 0.5× the floor",
            ),
            Figure(f"postgresql: of which planning ({n} workers' run)", planning, "s"),
        ]
    before, after = (f"{users / seconds:,.0f}" for seconds in floors)
    figures.append(
        Figure(
            f"postgresql: the floor, run before and after the ticks ({before} and {after}"
            " users/s): the faster is the floor above",
            users / raw,
            "users/s",
        )
    )
    return figures


def floor_on_copy(url: str, loaded: str, ws: int, batch_size: int) -> float:
    with fresh_database(url, "engine_floor", template=loaded) as copy:
        return floor(copy, ws, START, batch_size)


def floor(url: str, ws: int, now: float, batch_size: int) -> float:
    """Seconds to COPY the matching users out and their memberships and outbox rows in."""
    import psycopg

    began = time.perf_counter()
    with psycopg.connect(plain(url)) as conn, conn.cursor() as cursor:
        with cursor.copy(USERS_OUT, (ws,)) as copy:
            rows = list(copy.rows())
        conn.commit()
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            due = now + 172_800
            with cursor.copy(MEMBERSHIPS_IN) as copy:
                for user, _ in part:
                    member = ("active", "steps[1]", 1, now, now, due, now, "welcome", False, 1)
                    copy.write_row((ws, "floor", user, *member))
            with cursor.copy(OUTBOX_IN) as copy:
                for user, email in part:
                    payload = orjson.dumps({"subject": "Welcome", "body": f"Hello {email}"})
                    message = ("email", payload.decode(), "pending", 0, now, now)
                    copy.write_row((ws, f"floor/{user}", "floor", "welcome", user, 1, *message))
            conn.commit()
    return time.perf_counter() - began


def first_tick(
    url: str, broker_url: str, users: int, workers: int, batch_size: int, folder: Path
) -> tuple[float, float]:
    """Seconds of the first tick's planning, and of the whole tick (until every batch is
    done), its batches worked by `workers` worker processes."""
    store = open_store(url, batch_size=batch_size)
    executor = CeleryExecutor(store, broker_url, republish_after=600.0, heartbeat=BROKER_HEARTBEAT)
    try:
        ws = store.workspace_id("default")
        apply(plan_apply(parse_campaign(CAMPAIGN), store, ws), store, ws, START, activate=True)
        programs = Programs(store)
        with lane_workers(executor.app, url, broker_url, workers, folder):
            began = time.perf_counter()
            plan_all(store, programs, START, full_pass_every=86400.0)
            planning = time.perf_counter() - began
            executor.drain(DEFAULT_LANE, START)
            took = time.perf_counter() - began
        queued = sum(store.outbox_counts(ws).values())
    finally:
        executor.close()
        store.close()
    if queued != users:
        raise AssertionError(f"the first tick queued {queued:,} messages for {users:,} users")
    return planning, took


@contextmanager
def lane_workers(app: Any, url: str, broker_url: str, n: int, folder: Path) -> Iterator[None]:
    """`n` `drumbeat worker --lane fast` processes on the store at `url`, consuming once the
    block starts; stopped (SIGTERM, their whole process groups) at its end."""
    if consumers(app):
        raise InvalidInput(
            Problem(
                "broker_url (DRUMBEAT_BROKER_URL)",
                f"another worker consumes {queue_name(DEFAULT_LANE)} there: give the benchmark"
                " a vhost of its own (amqp://…/VHOST)",
            ),
            what="settings",
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    env |= {"DRUMBEAT_DATABASE_URL": url, "DRUMBEAT_BROKER_URL": broker_url}
    with ExitStack() as stack:
        started = []
        for i in range(n):
            log = stack.enter_context((folder / f"worker-{n}-{i}.log").open("wb"))
            argv = [*drumbeat_argv(), "worker", "--lane", DEFAULT_LANE, "--concurrency", "1"]
            process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            stack.callback(stop, process)
            started.append(process)
        give_up = time.monotonic() + READY_SECONDS
        while consumers(app) < n:
            if time.monotonic() > give_up or any(p.poll() is not None for p in started):
                raise RuntimeError(f"the workers did not start: see {folder}/worker-{n}-*.log")
            time.sleep(0.2)
        yield


def consumers(app: Any) -> int:
    """Consumers of the fast lane's queue (declared first, as a worker declares it)."""
    queue = next(q for q in queues() if q.name == queue_name(DEFAULT_LANE))
    with app.connection_for_write() as conn:
        return int(queue.bind(conn.default_channel).queue_declare().consumer_count)


def stop(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def plain(url: str) -> str:
    """`url` as psycopg takes it (no SQLAlchemy driver name)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
