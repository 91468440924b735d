"""Helpers for tests that run `drumbeat run` and `drumbeat advance` as processes: a store of
their own (PostgreSQL: a fresh database, since the virtual clock is store-wide), a campaign
and users written beforehand, the venv's `drumbeat` command, and what reached the file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import select

from drumbeat.campaigns import apply, plan_apply
from drumbeat.client import Drumbeat
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.clock import StoreClock
from drumbeat.store import open_store
from drumbeat.store.schema import outbox
from tests.e2e.helpers import campaign

DRUMBEAT = str(Path(sys.executable).parent / "drumbeat")
WORKSPACE = "runs"
_started: list[subprocess.Popen[bytes]] = []


@contextmanager
def own_store(database_url: str) -> Iterator[str]:
    """`database_url` on SQLite (a new file already); on PostgreSQL a database of its own
    on the same server, dropped at the end."""
    if not database_url.startswith("postgresql"):
        with leftovers_killed():
            yield database_url
        return
    with own_database(database_url) as own, leftovers_killed():
        yield own


@contextmanager
def leftovers_killed() -> Iterator[None]:
    """Kill, at the end, the processes a failed test left running."""
    try:
        yield
    finally:
        while _started:
            process = _started.pop()
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def own_database(database_url: str) -> Iterator[str]:
    base, _ = database_url.rsplit("/", 1)
    name = f"drumbeat_run_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(
    url: str,
    steps: list[dict[str, Any]],
    users: int,
    *,
    at: float | None = None,
    traits: Callable[[int], dict[str, Any]] = lambda _n: {},
    **definition: Any,
) -> None:
    """`users` free users (with `traits(n)` besides) and an active campaign `c` of `steps`
    (audience: the free users, unless `definition` says otherwise); a virtual clock at
    `at`, if given."""
    store = open_store(url)
    if at is not None:
        StoreClock(store).set(at)
    store.close()
    with Drumbeat(url, workspace=WORKSPACE) as db:
        db.identify_many(
            {"user_id": f"u{n}", "traits": {"plan": "free", **traits(n)}} for n in range(users)
        )
        parsed = parse_campaign(campaign("c", steps, **definition))
        apply(plan_apply(parsed, db.store, db.ws), db.store, db.ws, db.clock(), activate=True)


def environment(url: str, outbox_file: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    env |= {
        "DRUMBEAT_DATABASE_URL": url,
        "DRUMBEAT_WORKSPACE": WORKSPACE,
        "DRUMBEAT_OUTBOX_FILE": str(outbox_file),
    }
    env |= {f"DRUMBEAT_{name.upper()}": value for name, value in settings.items()}
    return env


def start(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`drumbeat ARGS` in a process group of its own (its worker processes in it, as a
    terminal's Ctrl-C or a service manager would reach them), output to `log`."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [DRUMBEAT, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _started.append(process)
    return process


def wait_for(
    condition: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    deadline: float = 60.0,
) -> None:
    """Poll `condition` until it holds, failing after `deadline` seconds, or at once if
    `process` ends meanwhile."""
    give_up = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < give_up, f"gave up waiting for {what}"
        if process is not None:
            assert process.poll() is None, f"exited with {process.returncode} before {what}"
        time.sleep(0.02)


def delivered(path: Path) -> list[dict[str, Any]]:
    """What the file channel wrote (one JSON line a message; a line still being written is
    not counted)."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


def outbox_rows(url: str) -> list[dict[str, Any]]:
    o = outbox.c
    query = select(o.dedupe_key, o.step_id, o.user_id, o.status, o.created_at, o.sent_at).order_by(
        o.id
    )
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
    finally:
        store.close()
