"""`drumbeat bench capacity` at a tiny size, run as a user runs it, on SQLite and
PostgreSQL: it measures N, predicts 2N, runs 2N (twice over) and writes predicted against
measured (batches exactly: no timing in that)."""

from __future__ import annotations

import os
import re

from tests.e2e.test_cli_smoke import drumbeat


def test_bench_capacity_smoke_writes_its_figures(tmp_path, pg_database):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    report = tmp_path / "BENCHMARKS.md"
    args = ("--users", "20", "--rounds", "2", "--postgres", pg_database, "--write", str(report))
    drumbeat("--batch-size", "10", "bench", "capacity", *args, cwd=tmp_path, env=env)
    text = report.read_text()
    assert "<!-- bench:capacity -->" in text
    for backend in ("sqlite", "postgresql"):
        at = f"{backend}: at 40 users (measured at 20)"
        assert f"{at}, tick time, mean of 48 ticks, median of 2 rounds (each round: " in text
        batches = re.search(re.escape(at) + r", batches \| ([\d.]+)  \| ([\d.]+)", text)
        assert batches is not None and batches.group(1) == batches.group(2) == "8.00", text
