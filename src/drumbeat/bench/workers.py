"""`drumbeat bench workers`: no central bottleneck in the distributed shape. Sending is the
dispatch lane's work: `drumbeat worker --lane dispatch` processes, started by the bench,
each claiming due outbox rows and calling a webhook for each. The webhook is a local HTTP
server of the bench's own that answers every call after DELAY (threaded: calls never wait
for one another), so a claim's time is mostly waiting. The scheduler (`drumbeat run
--scheduler-only`'s `Scheduler`, ticking in this process) publishes the dispatch messages.

Two rounds on one store, each over USERS users of a campaign with one webhook step, queued
(planned and worked in this process, untimed) just before the round: one worker, then
WORKERS workers. A round is timed from its messages made due and the scheduler's first
tick to the last of them recorded `sent`; the server counts the round's calls (as many as
messages when each was sent once). Target: 4 workers deliver ≥ 3.5× what one delivers.

Workers are started, and have opened the store, before a round; its messages are queued
due an hour later, and made due when the round starts, so none is sent before. The
workers consume the broker's `drumbeat.dispatch` queue: the bench refuses a broker where
another process consumes it (give the bench a RabbitMQ vhost of its own).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import update

from drumbeat.bench.engine import load_users
from drumbeat.bench.idle import remove
from drumbeat.bench.report import Figure
from drumbeat.campaigns import apply, plan_apply
from drumbeat.config import Settings
from drumbeat.errors import InvalidInput
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.executors.celery_app import BATCH_LANES, DISPATCH_LANE, queue_name
from drumbeat.pipeline.planner import plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.pipeline.scheduler import Scheduler
from drumbeat.pipeline.worker import BATCH_LEASE, process_batch
from drumbeat.store import Store, open_store
from drumbeat.store.owners import claim_owner
from drumbeat.store.schema import outbox

HOST = "127.0.0.1"
FULL_PASS = 7 * 86400.0
READY_SECONDS = 180.0  # for the workers to start (several at once, on a busy machine)
ROUND_SECONDS = 1800.0  # for a round's messages to be sent
POLL_SECONDS = 0.1
HELD = 3600.0  # seconds ahead a round's messages are queued for, until the round releases them


class Hooks(ThreadingHTTPServer):
    """The webhook receiver: each POST answered 200 after `delay` seconds, on a thread of its
    own; the calls counted."""

    daemon_threads = True

    def __init__(self, delay: float) -> None:
        super().__init__((HOST, 0), _Answer)
        self.delay = delay
        self.calls = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/hook"


class _Answer(BaseHTTPRequestHandler):
    server: Hooks
    protocol_version = "HTTP/1.1"  # kept alive: a worker's calls reuse their connections

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.server.delay)  # the provider's work, as the bench's waiting
        with self.server.lock:
            self.server.calls += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: thousands of calls."""


@dataclass(frozen=True)
class Round:
    workers: int
    seconds: float
    sent: int
    calls: int


def run(
    url: str,
    broker_url: str,
    *,
    users: int,
    workers: int,
    delay: float,
    concurrency: int,
    batch_size: int,
    tick: float,
) -> list[Figure]:
    """One store: a round with one dispatch worker, then one with `workers`."""
    store = open_store(url, batch_size=batch_size)
    settings = Settings(
        database_url=url,
        broker_url=broker_url,
        batch_size=batch_size,
        tick_interval=tick,
        webhook_allow=[HOST],
    )
    env = worker_env(settings, concurrency)
    rounds: list[Round] = []
    workspaces: list[int] = []
    try:
        with Hooks(delay) as hooks:
            threading.Thread(target=hooks.serve_forever, daemon=True).start()
            scheduler = Scheduler(store, settings)
            try:
                refuse_shared(scheduler)
                with dispatch_workers(env) as start:
                    for n in (1, workers):
                        start(n, lambda n=n: consumers(scheduler) >= n)  # type: ignore[misc]
                        warm(scheduler, n)
                        ws = queue_messages(store, users, hooks.url)
                        workspaces.append(ws)
                        rounds.append(timed_round(store, scheduler, hooks, ws, users, n))
            finally:
                scheduler.close()
                hooks.shutdown()
    finally:
        for ws in workspaces:  # nothing of the bench is planned again, or left to count
            remove(store, ws)
        store.close()
    return figures(store.dialect, users, delay, concurrency, rounds)


def worker_env(settings: Settings, concurrency: int) -> dict[str, str]:
    """The environment of a `drumbeat worker`: this one's, with the bench's store, broker,
    claim size and webhook settings."""
    env = dict(os.environ)
    env |= {
        "DRUMBEAT_DATABASE_URL": settings.database_url,
        "DRUMBEAT_BROKER_URL": settings.broker_url or "",
        "DRUMBEAT_BATCH_SIZE": str(settings.batch_size),
        "DRUMBEAT_WEBHOOK_ALLOW": HOST,  # the SSRF guard's allow-list: plain http to here
        "DRUMBEAT_WEBHOOK_CONCURRENCY": str(concurrency),
    }
    return env


@contextmanager
def dispatch_workers(env: dict[str, str]) -> Iterator[Callable[[int, Callable[[], bool]], None]]:
    """`start(n, ready)`: `drumbeat worker --lane dispatch` processes until there are `n`,
    then wait for `ready()`. All of them stopped at the end (SIGTERM, then SIGKILL); their
    logs kept if the bench failed."""
    logs = Path(tempfile.mkdtemp(prefix="drumbeat-bench-workers-"))
    running: list[subprocess.Popen[bytes]] = []

    def start(n: int, ready: Callable[[], bool]) -> None:
        while len(running) < n:
            with (logs / f"worker-{len(running)}.log").open("wb") as out:
                command = [sys.executable, "-m", "drumbeat", "worker", "--lane", DISPATCH_LANE]
                running.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        wait_for(ready, READY_SECONDS, f"{n} dispatch workers consuming (logs: {logs})")

    try:
        yield start
    finally:
        stop(running)
    shutil.rmtree(logs)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each worker's group (its pool too), SIGKILL to those still there in 30 s."""
    for process in processes:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {seconds:g} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def consumers(scheduler: Scheduler) -> int:
    return scheduler.publisher.consumers(DISPATCH_LANE)


def refuse_shared(scheduler: Scheduler) -> None:
    """The bench's workers take every dispatch message of the broker, and other workers
    would take the bench's: refuse a broker whose dispatch queue has consumers."""
    if n := consumers(scheduler):
        raise InvalidInput(
            f"{queue_name(DISPATCH_LANE)} has {n} consumer(s) on this broker already: "
            "give the bench a RabbitMQ vhost of its own (amqp://…/VHOST)"
        )


def warm(scheduler: Scheduler, n: int) -> None:
    """Two dispatch messages for each of the `n` idle workers while nothing is due: each
    opens the store and its channels before the round. A worker is given its second only
    once its first task ran (prefetch 1, acked when run), so when none waits, every first
    one ran; the second ones, on warm workers, run within milliseconds."""
    for _ in range(2):
        scheduler.publisher.publish_dispatch()
        wait_for(lambda: not scheduler.publisher.waiting(DISPATCH_LANE), READY_SECONDS, "warm-up")


def queue_messages(store: Store, users: int, url: str) -> int:
    """A fresh workspace of `users` users entered into a campaign with one webhook step,
    worked in this process at HELD seconds from now: `users` messages due then, so that no
    worker takes one before the round (`release`); the workspace's id."""
    ws = store.workspace_id(f"bench-workers-{uuid.uuid4().hex[:8]}")
    load_users(store, ws, users)
    step = {"send": {"id": "hook", "channel": "webhook", "url": url, "body": "Hi"}}
    campaign = {"key": "hook", "name": "hook", "audience": {"attr": "plan", "eq": "free"}}
    now = time.time() + HELD
    checked = plan_apply(
        parse_campaign(campaign | {"steps": [step]}), store, ws, webhook_allow=[HOST]
    )
    apply(checked, store, ws, now, activate=True)
    programs = Programs(store)
    plan_all(store, programs, now, full_pass_every=FULL_PASS)
    for lane in BATCH_LANES:
        while ids := store.claimable_batch_ids(lane, 100):
            for batch_id in ids:
                batch = store.claim_batch_id(batch_id, BATCH_LEASE, owner=claim_owner())
                assert batch is not None
                process_batch(store, programs, batch, batch.due_at)
    return ws


def timed_round(
    store: Store, scheduler: Scheduler, hooks: Hooks, ws: int, users: int, workers: int
) -> Round:
    """Tick the scheduler until the `users` messages of `ws` are sent."""
    calls = hooks.calls
    stop = threading.Event()
    ticking = threading.Thread(
        target=scheduler.run, args=(scheduler.config.tick_interval,), kwargs={"stop": stop}
    )
    started = time.perf_counter()
    release(store, ws)
    ticking.start()
    try:
        wait_for(lambda: sent(store, ws) >= users, ROUND_SECONDS, f"{users:,} messages sent")
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        ticking.join()
    return Round(workers, seconds, sent(store, ws), hooks.calls - calls)


def release(store: Store, ws: int) -> None:
    """The workspace's messages due now (the bench's own shortcut: one UPDATE)."""
    with store.writing() as conn:
        due = update(outbox).where(outbox.c.workspace_id == ws).values(available_at=time.time())
        conn.execute(due)


def sent(store: Store, ws: int) -> int:
    return sum(n for (_, _, status), n in store.outbox_counts(ws).items() if status == "sent")


def figures(
    dialect: str, users: int, delay: float, concurrency: int, rounds: list[Round]
) -> list[Figure]:
    """Messages delivered a second by each round; the last round's floor is the first's."""
    one = rounds[0].sent / rounds[0].seconds
    what = f"webhook answering after {delay * 1000:g} ms, {concurrency} calls at once a worker"
    return [
        Figure(
            f"{dialect}: {r.workers} dispatch worker{'s' if r.workers > 1 else ''}, {users:,} "
            f"messages in {r.seconds:,.1f} s ({what}; {r.calls:,} calls)",
            r.sent / r.seconds,
            "messages/s",
            floor=one if r is rounds[-1] else None,
            target="≥ 3.5× (4 workers)" if r is rounds[-1] else "",
        )
        for r in rounds
    ]
