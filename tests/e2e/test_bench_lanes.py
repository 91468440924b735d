"""`drumbeat bench lanes` at a small size, run as a user runs it: it measures both figures
and writes its section."""

from __future__ import annotations

from tests.e2e.test_cli_smoke import clean_env, drumbeat  # noqa: F401  (the fixture)


def test_bench_lanes_smoke_writes_its_figures(tmp_path, clean_env):  # noqa: F811
    report = tmp_path / "BENCHMARKS.md"
    args = ("--arriving", "20", "--backlog", "500", "--ticks", "2", "--write", str(report))
    drumbeat("--batch-size", "50", "bench", "lanes", *args, cwd=tmp_path, env=clean_env)
    text = report.read_text()
    assert "<!-- bench:lanes -->" in text and "fast batch wait p99, 2 ticks of 20 users" in text
    assert "while the slow lane holds 500 users" in text
