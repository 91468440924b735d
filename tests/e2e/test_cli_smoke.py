"""The commands a user types, run as a user runs them: demo, benchmarks (small), the flow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from drumbeat.demo.story import CAMPAIGNS, campaign_path
from drumbeat.store import open_store
from tests.conftest import need_service

DRUMBEAT = [sys.executable, "-m", "drumbeat"]


def drumbeat(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [*DRUMBEAT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    env["COLUMNS"] = "200"
    return env


def test_demo_tells_the_whole_story(tmp_path, clean_env):
    out = drumbeat("demo", "--users", "400", "--days", "12", cwd=tmp_path, env=clean_env)
    assert "messages per campaign and step" in out
    assert "conversion by path" in out
    assert "store.load_users" in out
    assert (tmp_path / "drumbeat-demo.db").exists()
    assert (tmp_path / "drumbeat-demo-messages.jsonl").stat().st_size > 0


def test_bench_store_smoke_writes_its_figures(tmp_path, clean_env, pg_database):
    report = tmp_path / "BENCH.md"
    drumbeat(
        "bench",
        "store",
        "--users",
        "500",
        "--postgres",
        pg_database,
        "--write",
        str(report),
        cwd=tmp_path,
        env=clean_env,
    )
    text = report.read_text()
    assert "<!-- bench:store -->" in text and "sqlite: import 500 users" in text
    assert "postgresql: count a three-condition audience" in text
    users = (
        "SELECT count(*) FROM users JOIN workspaces ON workspaces.id = users.workspace_id"
        " WHERE workspaces.name LIKE 'bench-%'"
    )
    assert left_behind(pg_database, "users", users) == 0  # the database given is left alone


def test_bench_engine_smoke_writes_its_figures(tmp_path, clean_env, pg_database):
    report = tmp_path / "BENCH.md"
    drumbeat(
        "bench", "engine", "--users", "500", "--postgres", pg_database, "--write", str(report),
        cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "first tick: entry + first message, 500 users" in text
    assert "sqlite: statements per 1,000 users, the batch path" in text
    assert "postgresql: statements per 1,000 users, the batch path" in text


def test_bench_demo_smoke_writes_its_figures(tmp_path, clean_env):
    report = tmp_path / "BENCH.md"
    drumbeat(
        "bench", "demo", "--users", "300", "--days", "4", "--write", str(report),
        cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:demo -->" in text and "demo: 300 users" in text and "(16 ticks)" in text


def test_bench_limiter_smoke_writes_its_figures(tmp_path, clean_env, pg_database):
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        from tests.conftest import need_service

        need_service("Redis", str(exc))
    report = tmp_path / "BENCH.md"
    drumbeat(
        "bench", "limiter", "--pending", "1000", "--postgres", pg_database, "--redis", url,
        "--write", str(report), cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:limiter -->" in text
    for store in ("sqlite", "postgresql"):
        for where in ("the store", "Redis"):
            assert f"{store}: a grant of 100 messages counted in {where}" in text
    counts = "SELECT count(*) FROM rate_limits WHERE channel LIKE 'bench-%'"
    assert left_behind(pg_database, "rate_limits", counts) == 0


def test_bench_startup_smoke_writes_its_figures(tmp_path, clean_env):
    report = tmp_path / "BENCH.md"
    drumbeat("bench", "startup", "--runs", "1", "--write", str(report), cwd=tmp_path, env=clean_env)
    text = report.read_text()
    assert "<!-- bench:startup -->" in text and "drumbeat --help: wall, median of 1" in text


def test_bench_dispatch_smoke_writes_its_figures(tmp_path, clean_env, pg_database):
    report = tmp_path / "BENCH.md"
    before = bench_rows(pg_database, "outbox")
    drumbeat(
        "bench", "dispatch", "--pending", "3000,1000,2000", "--postgres", pg_database,
        "--write", str(report), cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:dispatch -->" in text
    assert "sqlite: claim 100 rows, any channel, of 3,000 pending" in text
    assert "postgresql: one channel's (1 in 10): claim at 2,000 / at 1,000 pending" in text
    assert "postgresql: one channel's (1 in 10): claim at 3,000 / at 1,000 pending" in text
    assert "postgresql: fill 2,000 → 3,000 pending" in text
    assert bench_rows(pg_database, "outbox") == before  # the run's messages are gone


def bench_rows(database_url: str, table: str) -> int:
    """Rows of `table` in the session database's bench workspaces (other benches' too, so a
    test compares before and after its own run). The session database is made empty; its
    tables come with the first store opened on it, so the count brings the schema up to date
    first: a test that counts before any other test (or its own bench) ran finds the tables."""
    open_store(database_url).close()
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            f"SELECT count(*) FROM {table} JOIN workspaces ON workspaces.id = {table}.workspace_id"
            " WHERE workspaces.name LIKE 'bench-%'"
        ).fetchone()
    return int(found[0]) if found else 0


def test_bench_dispatch_refuses_fewer_than_two_sizes(tmp_path, clean_env):
    done = subprocess.run(
        [*DRUMBEAT, "bench", "dispatch", "--pending", "5000,5000"],
        cwd=tmp_path, capture_output=True, text=True, env=clean_env, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--pending" in done.stderr and "Traceback" not in done.stderr


def test_bench_idle_smoke_writes_its_figures(tmp_path, clean_env, pg_database):
    report = tmp_path / "BENCH.md"
    before = bench_rows(pg_database, "campaigns")
    drumbeat(
        "bench", "idle", "--users", "200", "--campaigns", "2,5", "--postgres", pg_database,
        "--write", str(report), cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:idle -->" in text
    assert "sqlite: idle tick, 5 active campaigns, 200 users" in text
    assert "postgresql: tick at 5 / at 2 campaigns" in text
    # the run's campaigns are gone: no later tick plans them
    assert bench_rows(pg_database, "campaigns") == before


def test_bench_changed_smoke_writes_its_figures(tmp_path, clean_env, pg_database):
    report = tmp_path / "BENCH.md"
    before = bench_rows(pg_database, "users")
    drumbeat(
        "bench", "changed", "--users", "500", "--campaigns", "3", "--postgres", pg_database,
        "--write", str(report), cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:changed -->" in text
    assert "sqlite: tick, 5 of 500 users changed (3 campaigns) in an attribute 1 campaign" in text
    assert "postgresql: that tick, read by 1 campaign (floor: read by all 3)" in text
    assert bench_rows(pg_database, "users") == before  # the run's users are gone


@pytest.mark.parametrize("sizes", ["100,10", "ten", "0,5"])
def test_bench_idle_refuses_campaign_numbers_not_ascending(tmp_path, clean_env, sizes):
    done = subprocess.run(
        [*DRUMBEAT, "bench", "idle", "--users", "100", "--campaigns", sizes],
        cwd=tmp_path, capture_output=True, text=True, env=clean_env, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--campaigns" in done.stderr and "Traceback" not in done.stderr


def test_refused_input_exits_2_and_says_where(tmp_path, clean_env):
    bad = tmp_path / "bad.yaml"
    bad.write_text("key: Bad Key\nname: x\naudience: {attr: plan, eq: free}\nsteps: []\n")
    done = subprocess.run(
        [*DRUMBEAT, "--database-url", f"sqlite:///{tmp_path}/d.db", "campaign", "check", str(bad)],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
    )
    assert done.returncode == 2
    assert "key: expected lowercase letters" in done.stderr
    assert "steps: expected at least 1 item" in done.stderr


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_demo_campaigns_pass_check(name, tmp_path, clean_env):
    out = drumbeat(
        "--database-url",
        f"sqlite:///{tmp_path}/d.db",
        "campaign",
        "check",
        str(campaign_path(name)),
        cwd=tmp_path,
        env=clean_env,
    )
    assert "valid" in out


def test_a_big_users_file_is_checked_by_processes_from_the_cli(tmp_path, clean_env):
    users = tmp_path / "users.jsonl"
    padding = "x" * 200  # 40,000 lines of ~250 bytes: over the 8 MiB that takes processes
    with users.open("w") as out:
        for i in range(40_000):
            out.write(json.dumps({"user_id": f"u{i}", "traits": {"note": padding}}) + "\n")
    db = ("--database-url", f"sqlite:///{tmp_path}/cli.db")
    out = drumbeat(
        *db, "import", "users", str(users), "--processes", "2", cwd=tmp_path, env=clean_env
    )
    assert "imported 40,000 users" in out and "checked by 2 processes" in out


def test_import_from_the_cli_in_batches_of_the_import_batch_size(tmp_path, clean_env):
    users = tmp_path / "users.jsonl"
    users.write_text(
        "".join(
            json.dumps({"user_id": f"u{i}", "traits": {"plan": "free"}}) + "\n" for i in range(5)
        )
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps({"user_id": f"u{i}", "event": "login", "timestamp": "2026-03-01T00:00:00Z"})
            + "\n"
            for i in range(4)
        )
    )
    db = ("--database-url", f"sqlite:///{tmp_path}/cli.db")
    out = drumbeat(
        *db, "import", "users", str(users), "--batch-size", "2", cwd=tmp_path, env=clean_env
    )
    assert "imported 5 users" in out
    in_threes = {**clean_env, "DRUMBEAT_IMPORT_BATCH_SIZE": "3"}
    assert "imported 4 events" in drumbeat(
        *db, "import", "events", str(events), cwd=tmp_path, env=in_threes
    )
    refused = subprocess.run(
        [*DRUMBEAT, *db, "import", "users", str(users)],
        cwd=tmp_path,
        env={**clean_env, "DRUMBEAT_IMPORT_BATCH_SIZE": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "DRUMBEAT_IMPORT_BATCH_SIZE" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_bench_event_smoke_writes_its_figures(tmp_path, clean_env):
    report = tmp_path / "BENCH.md"
    drumbeat(
        "bench", "event", "--users", "20", "--campaigns", "3", "--write", str(report),
        cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:event -->" in text
    assert "identify → decision, 3 campaigns, p99 of 20 calls" in text


def test_bench_access_smoke_writes_its_figures(tmp_path, clean_env):
    from tests.contract.test_cache import REDIS_URL, redis_cache

    try:
        redis_cache().client.ping()  # type: ignore[attr-defined]
    except Exception as exc:
        need_service("Redis", str(exc))
    report = tmp_path / "BENCH.md"
    drumbeat(
        "bench", "access", "--users", "200", "--changed", "20", "--campaigns", "3",
        "--redis", REDIS_URL, "--write", str(report), cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:access -->" in text
    assert (
        "| redis cache: store reads of users, 3 campaigns × 20 changed users | 1.00 reads" in text
    )


def test_bench_pipeline_smoke_writes_its_figures(tmp_path, clean_env, pg_database, broker_url):
    report = tmp_path / "BENCH.md"
    env = {**clean_env, "DRUMBEAT_BROKER_URL": broker_url, "DRUMBEAT_BATCH_SIZE": "100"}
    drumbeat(
        "bench", "pipeline", "--batches", "3", "--runs", "2", "--postgres", pg_database,
        "--write", str(report), cwd=tmp_path, env=env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:pipeline -->" in text
    assert "sqlite: a 100-user batch's work (load, engine, commit)" in text
    assert "postgresql: the broker's share (publish, deliver, ack, claim) of a batch" in text
    assert "median of 6 in 2 processes" in text  # each run's batches, pooled
    workspaces = "SELECT count(*) FROM workspaces WHERE name LIKE 'bench-%'"
    assert left_behind(pg_database, "workspaces", workspaces) == 0


def test_bench_pipeline_needs_a_broker(tmp_path, clean_env):
    done = subprocess.run(
        [*DRUMBEAT, "bench", "pipeline"],
        cwd=tmp_path, capture_output=True, text=True, env=clean_env, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "DRUMBEAT_BROKER_URL" in done.stderr


def test_bench_loader_smoke_writes_its_figures(tmp_path, clean_env, pg_database):
    report = tmp_path / "BENCH.md"
    drumbeat(
        "bench", "loader", "--users", "200", "--baseline-users", "100", "--workers", "2",
        "--postgres", pg_database, "--write", str(report),
        cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    text = report.read_text()
    assert "<!-- bench:loader -->" in text
    for store in ("sqlite", "postgresql"):
        assert f"{store}: 200 users, file → first message queued" in text
        assert "(baseline) measured on its first 100 users" in text
        assert f"| {store}: baseline on users 51–100 (second half) | — |" in text
        assert f"{store}: drumbeat advance (1 hourly tick, 2 workers), wall (start" in text
        assert f"{store}: drumbeat advance (1 hourly tick, 2 workers), CPU (user" in text
        assert f"{store}: of which advance sending the messages" in text
        assert f"{store}: the same with Drumbeat's advance sending the messages too" in text
        assert f"{store}: drumbeat advance --no-send (1 hourly tick, 2 workers), wall" in text
        assert f"| {store}: bulk-write floor (the same rows from the same file" in text
        assert f"| {store}: Drumbeat like for like (--no-send) vs the bulk-write floor |" in text
    with psycopg.connect(pg_database) as conn:  # its fresh databases are dropped
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s",
            (pg_database.rsplit("/", 1)[1] + "_loader_%",),
        ).fetchone()
    assert left == (0,)


def left_behind(url: str, table: str, query: str) -> int:
    """What `query` counts in the database at `url` (0 if nothing made `table` there): a
    benchmark given `--postgres URL` works in fresh databases of its own."""
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            return 0
        return int(conn.execute(query).fetchone()[0])
