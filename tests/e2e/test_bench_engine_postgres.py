"""`drumbeat bench engine --postgres` with a broker, at a small size, run as a user runs it:
the first tick on PostgreSQL through the `drumbeat worker` processes it starts, next to its
COPY floor; its databases are dropped, its workers stopped and the queues and exchanges it
declared on the broker deleted at the end."""

from __future__ import annotations

import subprocess

import psycopg
from sqlalchemy.engine import make_url

from drumbeat.pipeline.executors.celery_app import celery_app, queues
from tests.conftest import own_vhost
from tests.e2e.test_cli_smoke import clean_env, drumbeat  # noqa: F401  (the fixture)


def test_bench_engine_on_postgres_through_workers(tmp_path, clean_env, pg_database):  # noqa: F811
    with own_vhost() as vhost:  # as a user's broker is: no drumbeat queue on it yet
        broker_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        bench_engine(tmp_path, clean_env, pg_database, broker_url)
        for what in ("queues", "exchanges"):  # the broker is left as it was found
            left = rabbitmqctl(f"list_{what}", "-p", vhost, "name")
            assert "drumbeat" not in left and "celery" not in left
        assert_workers_gone(broker_url)


def bench_engine(tmp_path, clean_env, pg_database, broker_url):  # noqa: F811
    report = tmp_path / "BENCHMARKS.md"
    env = clean_env | {"DRUMBEAT_BROKER_URL": broker_url}
    drumbeat(
        "bench", "engine", "--users", "300", "--postgres", pg_database,
        "--postgres-workers", "1,2", "--write", str(report), cwd=tmp_path, env=env,
    )  # fmt: skip
    text = report.read_text()
    for workers in ("1 Celery worker ", "2 Celery workers "):
        assert f"postgresql: first tick, entry + first message, 300 users, {workers}" in text
    assert "≥ 0.5× the floor" in text
    name = make_url(pg_database).database
    with psycopg.connect(pg_database) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}_engine_%",)
        ).fetchall()
    assert left == []


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def assert_workers_gone(broker_url: str) -> None:
    fast = next(q for q in queues() if q.name == "drumbeat.fast")
    app = celery_app(broker_url)
    with app.connection_for_write() as conn:
        assert fast.bind(conn.default_channel).queue_declare().consumer_count == 0
    app.close()
