"""Looking at a running Drumbeat from outside, as users do, on SQLite and PostgreSQL:
`drumbeat run --metrics-port` serves Prometheus /metrics with its worker processes' counts
added up (multiprocess mode), JSON log lines say each batch, and `drumbeat explain` shows
the pipeline as configured and its lanes' depth."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from drumbeat.model.attributes import format_timestamp
from drumbeat.store import migrate, open_store
from drumbeat.store.schema import batches
from tests.e2e.helpers import send
from tests.e2e.running import WORKSPACE, environment, own_store, prepare, start, wait_for
from tests.e2e.test_stats import START, drumbeat, named, stats

USERS = 30
BATCH = 7
BATCHES = -(-USERS // BATCH)


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    with own_store(database_url) as own:
        yield own


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scraped(port: int, name: str, **labels: str) -> float:
    """The sum of the samples `name` with `labels` at /metrics (0 before it answers)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        families = list(text_string_to_metric_families(text))
    except httpx.TransportError:
        return 0.0
    except ValueError:  # a scrape that met a file being written (polled again; seen once)
        return 0.0
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def test_run_serves_the_metrics_of_its_worker_processes(url: str, tmp_path: Path) -> None:
    prepare(url, [send("one")], USERS)
    env = environment(url, tmp_path / "messages.jsonl", batch_size=str(BATCH))
    # a directory of one's own, holding the empty file of a process killed as it made it:
    # prometheus_client's own collector failed every scrape on it (client_python#1199)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_4194304.db").touch()
    port, log = free_port(), tmp_path / "run.log"
    args = ["run", "--interval", "0.2", "--workers", "2", "--metrics-port", str(port)]
    run = start(args, env, log)
    # the batches are worked in the worker processes: only multiprocess mode counts them here
    done = {"lane": "fast", "outcome": "done"}
    wait_for(lambda: scraped(port, "drumbeat_batches_total", **done) == BATCHES, "batches", run)
    assert scraped(port, "drumbeat_batch_users_total", lane="fast") == USERS
    loads = scraped(port, "drumbeat_query_seconds_count", query="store.load_users")
    assert loads >= BATCHES  # a load a batch, and the dispatcher's
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    with pytest.raises(httpx.TransportError):  # the server stopped with the run
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    # and what the worker processes timed reached the store, through the run, at its exit
    staged = stats(env, "--by", "stage")
    assert (named(staged, "stage.batch")["count"], staged["users"]) == (BATCHES, USERS)


def test_a_metrics_port_in_use_is_refused(tmp_path: Path) -> None:
    env = environment(f"sqlite:///{tmp_path / 'd.db'}", tmp_path / "messages.jsonl")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = drumbeat(env, "run", "--metrics-port", str(port), code=2)
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1" in done.stderr


def batch_ids(url: str) -> list[int]:
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            return sorted(conn.execute(select(batches.c.id)).scalars())
    finally:
        store.close()


def test_json_logs_say_each_batch_from_the_worker_processes(url: str, tmp_path: Path) -> None:
    prepare(url, [send("one")], USERS, at=START)
    env = environment(
        url, tmp_path / "m.jsonl", batch_size=str(BATCH), log_format="json", log_level="info"
    )
    to = format_timestamp(START + 3600)
    done = drumbeat(env, "advance", "--to", to, "--every", "1h", "--workers", "2")
    # every line but blank ones is JSON
    lines = [orjson.loads(line) for line in done.stderr.splitlines() if line.strip()]
    said = [line for line in lines if "batch" in line]
    assert sorted(line["batch"] for line in said) == batch_ids(url)
    assert len(said) == BATCHES and sum(line["users"] for line in said) == USERS
    for line in said:
        assert line["campaign"] == "c" and line["lane"] == "fast" and line["outcome"] == "done"
        assert line["level"] == "info" and line["logger"] == "drumbeat.pipeline.worker"
        assert 0 < line["seconds"] < 60 and line["time"].startswith("20")

    env["DRUMBEAT_LOG_FORMAT"] = "xml"
    refused = drumbeat(env, "advance", "--to", to, code=2)
    assert "log_format (DRUMBEAT_LOG_FORMAT)" in refused.stderr


def test_explain_shows_the_pipeline_as_configured_and_running(url: str, tmp_path: Path) -> None:
    prepare(url, [send("one")], USERS, at=START)
    secret_url = url.replace("postgres@", "postgres:s3cret@")  # trust auth: any password
    env = environment(secret_url, tmp_path / "m.jsonl", workers="3", rate_limits='{"email": 5}')
    store = open_store(url, migrate=False)
    ws = store.workspace_id(WORKSPACE)
    with store.writing() as conn:
        store.create_batches(conn, ws, "c", "fast", "enter", [["u1"], ["u2"]], START, START - 600)
    store.close()

    found = orjson.loads(drumbeat(env, "explain", "--format", "json").stdout)
    assert found["store"]["kind"] == url.split(":")[0]
    assert "s3cret" not in str(found)
    if url.startswith("postgresql"):
        assert found["store"]["url"].startswith("postgresql+psycopg://postgres:***@")
    assert found["store"]["schema"] == migrate.head()
    assert found["cache"] == {"kind": "none"}
    assert found["executor"] == {"kind": "processes", "workers": 3}
    assert found["active_campaigns"] == 1
    assert found["lanes"] == [
        {"lane": "fast", "pending": 2, "running": 0, "oldest_waiting_seconds": 600.0}
    ]
    channels = {c["channel"]: c for c in found["channels"]}
    assert channels["email"]["rate_limit"] == 5 and channels["webhook"]["rate_limit"] is None
    assert "dry run" in channels["email"]["sends_with"]

    shown = drumbeat(env, "explain").stdout
    assert "s3cret" not in shown and "│ active campaigns │ 1" in shown
    assert "│ fast │ 2       │ 0       │ 600 s" in shown

    env["DRUMBEAT_WORKERS"] = "1"  # this process, on two threads on PostgreSQL (one on SQLite)
    threads = 2 if url.startswith("postgresql") else 1
    found = orjson.loads(drumbeat(env, "explain", "--format", "json").stdout)
    assert found["executor"] == {"kind": "in-process", "workers": 1, "threads": threads}
    assert f"in-process, 1 worker(s), {threads} thread(s)" in drumbeat(env, "explain").stdout


def test_explain_reports_an_in_memory_store_working_in_process() -> None:
    env = environment("sqlite://", Path("/dev/null"), workers="4")
    found = orjson.loads(drumbeat(env, "explain", "--format", "json").stdout)
    assert found["executor"] == {"kind": "in-process", "workers": 1, "threads": 4}
