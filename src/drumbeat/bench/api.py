"""`drumbeat bench api`: the tracking API under load, as a client on the same host sees it.

A `drumbeat serve --workers W` process serves the store; a load generator in another process
(`bench/load.py`) sends `/v1/batch` requests of 100 events from C connections at once, then
single `/v1/track` calls, then `GET /healthz`. Figures: events stored per second (every event
counted in the store afterwards) and request latency p50 / p99 for batches; requests per
second and p99 for single calls; the CPU time (user + system) the server spent a request,
steadier than the wall figures on a shared machine. Floors, measured in the same run: the
same batches written through the Python API in this process (validation and one
`write_calls` transaction per batch, as the endpoint does, without HTTP); and `/healthz`, an
endpoint that does nothing, for what HTTP and the server cost a request by themselves.
PostgreSQL's tables are VACUUMed and ANALYZEd first: with autovacuum off, every earlier
run's deleted rows would stay in them.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
from sqlalchemy import delete

from drumbeat.bench.load import bodies
from drumbeat.bench.report import Figure
from drumbeat.ingest.validate import Validator
from drumbeat.store import Store, open_store
from drumbeat.store.keys import create_key
from drumbeat.store.schema import api_keys, attribute_types, events, settings, users

EVENTS = 100  # a batch's
TARGET = "≥ 20,000 events/s (2 cores)"


def run(url: str, batches: int, tracks: int, concurrency: int, workers: int) -> list[Figure]:
    store = open_store(url)
    backend = store.dialect
    ws = store.workspace_id(f"bench-api-{uuid.uuid4().hex[:8]}", now=time.time())
    floor_ws = store.workspace_id(f"bench-api-{uuid.uuid4().hex[:8]}", now=time.time())
    _id, key = create_key(store, ws, "write", time.time())
    try:
        tidy(store)
        floor, floor_cpu = direct_events_per_second(store, floor_ws, batches)
        with serving(url, workers) as (base, server):
            tag = uuid.uuid4().hex[:8]
            batch = load(base, server, key, "batch", batches, concurrency, tag)
            stored = store.count_events(ws)
            expected = (batches + concurrency) * EVENTS  # with the warm-up's
            if stored != expected:
                raise RuntimeError(f"{stored:,} events stored of {expected:,} sent")
            track = load(base, server, key, "track", tracks, concurrency, tag)
            idle = load(base, server, key, "healthz", tracks, concurrency, tag)
    finally:
        forget(store, (ws, floor_ws))
        store.close()
    per_second = batches * EVENTS / batch["seconds"]
    at = f"{backend}, {workers} workers, {concurrency} connections"
    return [
        Figure(f"{backend}: /v1/batch of {EVENTS} events, events stored/s ({at})",
               per_second, "events/s", floor, TARGET),
        Figure(f"{backend}: /v1/batch latency p50", _pct(batch, 50), "ms"),
        Figure(f"{backend}: /v1/batch latency p99", _pct(batch, 99), "ms"),
        Figure(f"{backend}: /v1/batch server CPU a request (user+sys)",
               _cpu_ms(batch, batches), "ms", floor_cpu),
        Figure(f"{backend}: /v1/track, one event a request ({at})",
               tracks / track["seconds"], "requests/s", tracks / idle["seconds"]),
        Figure(f"{backend}: /v1/track latency p99", _pct(track, 99), "ms", _pct(idle, 99)),
        Figure(f"{backend}: /v1/track server CPU a request (user+sys)",
               _cpu_ms(track, tracks), "ms", _cpu_ms(idle, tracks)),
    ]  # fmt: skip


def tidy(store: Store) -> None:
    """VACUUM and ANALYZE the tables a tracking call touches (PostgreSQL): a server with
    autovacuum off keeps every earlier run's deleted rows in them otherwise."""
    if store.dialect != "postgresql":
        return
    tables = ", ".join(t.name for t in (events, users, api_keys, attribute_types, settings))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {tables}")


def direct_events_per_second(store: Store, ws: int, batches: int) -> tuple[float, float]:
    """The floor: the same batches validated and written by the Python API, one process;
    events per second, and the CPU time (ms) of a batch."""
    calls = [orjson.loads(b or b"")["batch"] for b in bodies("batch", batches, EVENTS, "floor")]
    began, cpu = time.perf_counter(), time.process_time()
    for batch in calls:
        now = time.time()
        validator = Validator({}, now=now)
        records = [
            validator.event(
                {
                    "user_id": c["userId"],
                    "event": c["event"],
                    "properties": c["properties"],
                    "message_id": c["messageId"],
                },
                f"[{i}].",
            )
            for i, c in enumerate(batch)
        ]
        store.write_calls(ws, [], records, now)
    cpu_ms = (time.process_time() - cpu) * 1000 / batches
    return batches * EVENTS / (time.perf_counter() - began), cpu_ms


def load(
    base: str, server: int, key: str, kind: str, requests: int, concurrency: int, tag: str
) -> dict[str, Any]:
    """What the load generator measured, run as a process of its own, and the CPU seconds
    the server (process `server` and its workers) spent meanwhile."""
    spec = {"url": base, "key": key, "kind": kind, "requests": requests,
            "concurrency": concurrency, "events": EVENTS, "tag": f"{tag}-{kind}"}  # fmt: skip
    cpu = cpu_seconds(server)
    done = subprocess.run(
        [sys.executable, "-m", "drumbeat.bench.load", orjson.dumps(spec).decode()],
        capture_output=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr.decode()[-2000:]}")
    return {**orjson.loads(done.stdout), "cpu_seconds": cpu_seconds(server) - cpu}


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a live process and its live descendants (Linux /proc;
    0 elsewhere). The warm-up's requests are in it: a small share of a run."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as found:
            children = [int(child) for child in found.read().split()]
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return own + sum(cpu_seconds(child) for child in children)


def _cpu_ms(measured: dict[str, Any], requests: int) -> float:
    return float(measured["cpu_seconds"]) * 1000 / requests


def _pct(measured: dict[str, Any], percent: int) -> float:
    latencies = measured["latencies_ms"]
    if len(latencies) < 2:
        return float(latencies[0])
    return float(statistics.quantiles(latencies, n=100, method="inclusive")[percent - 1])


@contextmanager
def serving(url: str, workers: int) -> Iterator[tuple[str, int]]:
    """`drumbeat serve` on a free localhost port until the `with` ends; its base URL and
    process id."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    command = [sys.executable, "-m", "drumbeat", "--database-url", url, "serve",
               "--port", str(port), "--workers", str(workers)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, process)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            raise RuntimeError(f"drumbeat serve exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling a condition, with a deadline
    raise RuntimeError("drumbeat serve did not answer /healthz within 60 s")


def forget(store: Store, workspaces: tuple[int, ...]) -> None:
    """Delete the run's events, users and key: the next run meets the same tables."""
    with store.writing() as conn:
        for table in (events, users, api_keys):
            conn.execute(delete(table).where(table.c.workspace_id.in_(workspaces)))
