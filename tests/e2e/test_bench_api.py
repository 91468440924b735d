"""`drumbeat bench api` at a tiny size, as a user runs it: a server, a load generator in its
own process, figures for SQLite and PostgreSQL written to the report, and nothing left behind."""

from __future__ import annotations

import os

import psycopg

from tests.e2e.test_cli_smoke import drumbeat


def test_bench_api_smoke_writes_its_figures(tmp_path, pg_database):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    report = tmp_path / "BENCH.md"
    sizes = ["--batches", "6", "--tracks", "20", "--concurrency", "2", "--workers", "1"]
    drumbeat(
        "bench", "api", *sizes, "--postgres", pg_database, "--write", str(report),
        cwd=tmp_path, env={**env, "COLUMNS": "200"},
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:api -->" in text
    for backend in ("sqlite", "postgresql"):
        assert f"{backend}: /v1/batch of 100 events, events stored/s" in text
        assert f"{backend}: /v1/track latency p99" in text
    with psycopg.connect(pg_database) as conn:  # the run's events are gone: runs stay alike
        left = conn.execute(
            "SELECT count(*) FROM events JOIN workspaces ON workspaces.id = events.workspace_id"
            " WHERE workspaces.name LIKE 'bench-api-%'"
        ).fetchone()
    assert left == (0,)
