"""Delivery that survives faults, with real `drumbeat advance` processes, a real HTTP server
and a real SMTP server: two processes at different virtual times never send a message twice,
and an SMTP outage during `advance` loses nothing (retries count real time)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from drumbeat.client import Drumbeat
from drumbeat.engine.member import OutMessage
from drumbeat.pipeline.clock import StoreClock
from drumbeat.store import Store
from tests.integration.test_email import Recorder
from tests.integration.test_webhook import ServedInThread

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z, the virtual clock's start
DRUMBEAT = [sys.executable, "-m", "drumbeat"]


class CountingServer(ServedInThread):
    """An HTTP server that answers 200 after `delay` seconds and counts each Idempotency-Key
    (and notes when each call came, real time)."""

    def __init__(self, delay: float) -> None:
        self.keys: Counter[str] = Counter()
        self.arrivals: list[float] = []
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with peer.lock:
                    peer.arrivals.append(time.time())
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)  # the slow provider
                with peer.lock:
                    peer.keys[self.headers["Idempotency-Key"]] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


@pytest.fixture
def db(database_url: str, workspace_name: str) -> Iterator[Drumbeat]:
    db = Drumbeat(database_url, workspace=workspace_name)
    yield db
    db.close()


@pytest.fixture
def store(db: Drumbeat) -> Store:
    return db.store


def queue(db: Drumbeat, n: int, channel: str, payload: dict[str, Any]) -> None:
    """`n` users, and one message each due at T0; the store's clock set to T0."""
    db.identify_many(
        {"user_id": f"u{i}", "traits": {"email": f"u{i}@example.test"}} for i in range(n)
    )
    store, ws, workspace = db.store, db.ws, db.config.workspace
    messages = [
        OutMessage(f"{workspace}/c/s/u{i}/1", "s", f"u{i}", 1, channel, payload, T0)
        for i in range(n)
    ]
    with store.writing() as conn:
        store.insert_messages(conn, ws, "c", messages)
    StoreClock(store).set(T0)


def advance(database_url: str, workspace: str, to: str, **settings: object) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    env |= {"DRUMBEAT_DATABASE_URL": database_url, "DRUMBEAT_WORKSPACE": workspace}
    env |= {f"DRUMBEAT_{name.upper()}": str(value) for name, value in settings.items()}
    return subprocess.Popen(
        [*DRUMBEAT, "advance", "--to", to, "--every", "1h"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err
    return str(out)


def statuses(store: Store, workspace: str) -> Counter[str]:
    ws = store.workspace_id(workspace)
    return Counter(row["status"] for row in store.outbox_rows(ws))


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.05)


def test_two_advances_at_different_virtual_times_send_each_message_once(
    db, store, database_url, workspace_name
):
    n = 80
    with CountingServer(delay=0.1) as server:
        queue(db, n, "webhook", {"body": "hi", "url": server.url()})
        # claims of 40 rows, 2 calls at a time: 2 s a claim, twice the lease, so each claim
        # is kept while it is sent (and the other process is a day ahead)
        settings = {
            "webhook_allow": "127.0.0.1",
            "batch_size": 40,
            "webhook_concurrency": 2,
            "send_lease": 1.0,
        }
        near = advance(database_url, workspace_name, "2026-01-05T02:00:00Z", **settings)
        far = advance(database_url, workspace_name, "2026-01-06T00:00:00Z", **settings)
        finished(near), finished(far)
    assert len(server.keys) == n
    assert [key for key, count in server.keys.items() if count > 1] == []
    assert statuses(store, workspace_name) == {"sent": n}


@pytest.fixture
def smtp_port() -> int:
    with socket.socket() as probe:  # a free port, with nothing listening yet
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_smtp_outage_during_advance_delays_emails_and_loses_none(
    db, store, database_url, workspace_name, smtp_port
):
    n = 60
    queue(db, n, "email", {"subject": "Hello", "body": "hi"})
    process = advance(
        database_url,
        workspace_name,
        "2026-01-06T00:00:00Z",  # 24 ticks, in far less than a second of real time
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_starttls="false",
        retry_after=0.5,
        advance_retry_wait=20,
    )
    ws = store.workspace_id(workspace_name)
    wait_for(lambda: any(row["last_error"] for row in store.outbox_rows(ws)))
    time.sleep(1.0)  # the outage: the server is down a while longer (real time)
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        out = finished(process)
    finally:
        controller.stop()
    assert statuses(store, workspace_name) == {"sent": n}, out
    assert sorted(str(email["To"]) for email in recorder.emails()) == sorted(
        f"u{i}@example.test" for i in range(n)
    )
