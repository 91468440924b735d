"""`drumbeat bench lanes` at a small size, run as a user runs it: it measures both figures
and writes its section."""

from __future__ import annotations

import psycopg

from tests.e2e.test_cli_smoke import clean_env, drumbeat  # noqa: F401  (the fixture)


def test_bench_lanes_smoke_writes_its_figures(tmp_path, clean_env, pg_database):  # noqa: F811
    report = tmp_path / "BENCHMARKS.md"
    args = ("--arriving", "20", "--backlog", "500", "--ticks", "2", "--write", str(report))
    drumbeat(
        "--batch-size", "50", "bench", "lanes", *args, "--postgres", pg_database,
        cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:lanes -->" in text
    for store in ("sqlite", "postgresql"):
        assert f"{store}: fast batch wait p99, 2 ticks of 20 users" in text
        assert f"{store}: the same while the slow lane holds 500 users" in text
    with psycopg.connect(pg_database) as conn:  # its fresh database is dropped
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s",
            (pg_database.rsplit("/", 1)[1][:30] + "_lanes_%",),
        ).fetchone()
    assert left == (0,)
