"""`drumbeat bench workers` at a small size, run as a user runs it: both rounds on both
stores, every message called once, its section written; and it refuses a broker whose
dispatch queue another process consumes (its workers would take that one's messages)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from drumbeat.pipeline.executors.celery_app import celery_app, declare, queues
from tests.conftest import own_vhost
from tests.e2e.test_cli_smoke import DRUMBEAT, clean_env, drumbeat  # noqa: F401  (the fixture)


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A vhost no other test's workers consume from."""
    with own_vhost() as vhost:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"


def test_bench_workers_smoke_writes_its_figures(tmp_path, clean_env, pg_database, own_broker):  # noqa: F811
    report = tmp_path / "BENCH.md"
    env = {**clean_env, "DRUMBEAT_BROKER_URL": own_broker}
    drumbeat(
        "--batch-size", "20", "bench", "workers", "--users", "60", "--workers", "2",
        "--delay", "5", "--postgres", pg_database, "--write", str(report),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:workers -->" in text
    for store in ("sqlite", "postgresql"):
        assert f"| {store}: 1 dispatch worker, 60 messages in " in text
        assert f"| {store}: 2 dispatch workers, 60 messages in " in text
    assert text.count("; 60 calls)") == 4  # each message sent once, in each round
    with psycopg.connect(pg_database) as conn:  # the run's rows are gone: runs stay alike
        left = conn.execute(
            "SELECT count(*) FROM users JOIN workspaces ON workspaces.id = users.workspace_id"
            " WHERE workspaces.name LIKE 'bench-workers-%'"
        ).fetchone()
    assert left == (0,)


def test_bench_workers_refuses_a_broker_shared_with_a_dispatch_worker(
    tmp_path,
    clean_env,  # noqa: F811
    own_broker,
):
    app = celery_app(own_broker)
    declare(app)
    queue = next(q for q in queues() if q.name == "drumbeat.dispatch")
    try:
        with app.connection_for_write() as conn, conn.Consumer(queue, callbacks=[]):
            done = subprocess.run(
                [*DRUMBEAT, "bench", "workers", "--users", "10"],
                cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300,
                env={**clean_env, "DRUMBEAT_BROKER_URL": own_broker},
            )  # fmt: skip
    finally:
        app.close()
    assert done.returncode == 2, done.stderr
    assert "drumbeat.dispatch has 1 consumer(s)" in done.stderr
