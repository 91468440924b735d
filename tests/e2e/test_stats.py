"""Timings across processes, as users run them, on SQLite and PostgreSQL: `drumbeat import`
and `drumbeat advance` processes each write what they timed into the store, and `drumbeat
stats` shows it merged (counts add up, the buckets are the sum, the quantiles read from
them), filtered by --since; bad options are refused (exit 2) and nothing is written."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from drumbeat.histogram import BUCKETS, Histogram, quantile
from drumbeat.metrics import GLOBAL
from drumbeat.model.attributes import format_timestamp
from drumbeat.store import open_store
from drumbeat.store.schema import batches, timings
from tests.e2e.helpers import send, wait
from tests.e2e.running import DRUMBEAT, environment, own_store, prepare

START = 1_767_571_200.0  # 2026-01-05T00:00:00Z
DAY = 86400.0
USERS = 30


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    with own_store(database_url) as own:
        yield own


def drumbeat(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [DRUMBEAT, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def stats(env: dict[str, str], *args: str) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(drumbeat(env, "stats", "--format", "json", *args).stdout)
    return found


def named(report: dict[str, Any], name: str) -> dict[str, Any]:
    [line] = [line for line in report["names"] if line["name"] == name]
    return line


def buckets(line: dict[str, Any]) -> list[int]:
    dense = [0] * BUCKETS
    for index, n in line["buckets"].items():
        dense[int(index)] = n
    return dense


def users_file(path: Path, first: int, n: int) -> Path:
    path.write_text("".join(f'{{"user_id": "v{i}", "traits": {{}}}}\n' for i in range(first, n)))
    return path


def done_batches(url: str) -> tuple[int, int]:
    """The batches done, and their users."""
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(batches.c.user_ids).where(batches.c.status == "done"))
            sizes = [len(user_ids) for (user_ids,) in rows]
    finally:
        store.close()
    return len(sizes), sum(sizes)


def test_timings_of_two_processes_are_merged_exactly(url: str, tmp_path: Path) -> None:
    prepare(url, [send("one"), wait("1d"), send("two")], USERS, at=START)
    env = environment(url, tmp_path / "messages.jsonl", batch_size="7")

    drumbeat(env, "import", "users", str(users_file(tmp_path / "a.jsonl", 0, 5)))
    first = named(stats(env), "store.write_users")
    drumbeat(env, "import", "users", str(users_file(tmp_path / "b.jsonl", 5, 12)))
    both = named(stats(env), "store.write_users")
    # the second process's writes added to the first's, in the same rows
    assert first["count"] >= 1 and first["items"] == 5
    assert (both["count"], both["items"]) == (2 * first["count"], 12)
    merged = buckets(both)
    assert sum(merged) == both["count"] and all(
        m >= f for m, f in zip(merged, buckets(first), strict=True)
    )
    assert both["max"] >= first["max"]
    for line in (first, both):
        for q in ("p50", "p99"):
            assert line[q] == quantile(buckets(line), float(f"0.{q[1:]}"), line["max"])

    # two advances, one a tick each: the batches of both, per campaign and in stages
    drumbeat(env, "advance", "--to", format_timestamp(START + 3600), "--every", "1h")
    drumbeat(env, "advance", "--to", format_timestamp(START + DAY + 3600), "--every", "1d")
    count, users = done_batches(url)
    assert count >= 2 * (USERS // 7)  # each advance worked batches
    campaign = named(stats(env, "--by", "campaign"), "c")
    assert (campaign["count"], campaign["items"]) == (count, users)
    staged = stats(env, "--by", "stage")
    batch = named(staged, "stage.batch")
    assert (batch["count"], batch["items"]) == (count, users)
    assert staged["users"] == users and staged["messages"] == 2 * USERS
    assert staged["users_per_second"] is not None and staged["users_per_second"] > 0
    assert staged["store_queries_per_1000_users"] == staged["store_queries"] * 1000 / users
    assert staged["cache_hit_rate"] is None  # no cache records hits yet
    assert named(stats(env, "--by", "lane"), "fast")["count"] == count


def test_since_leaves_out_older_minutes(url: str, tmp_path: Path) -> None:
    env = environment(url, tmp_path / "messages.jsonl")
    drumbeat(env, "import", "users", str(users_file(tmp_path / "a.jsonl", 0, 3)))
    old = Histogram()
    for seconds in (0.5, 0.5, 0.5):
        old.add(seconds, items=100)
    store = open_store(url, migrate=False)
    two_hours_ago = (time.time() - 7200) // 60 * 60
    store.add_timings({(two_hours_ago, GLOBAL, "query", "store.write_users"): old})
    store.close()
    recent = named(stats(env, "--since", "1h"), "store.write_users")
    assert recent["items"] == 3 and recent["max"] < 0.5
    everything = named(stats(env, "--since", "3h"), "store.write_users")
    assert (everything["count"], everything["items"]) == (recent["count"] + 3, 303)
    assert everything["max"] == 0.5 and everything["p50"] == 0.5
    shown = drumbeat(env, "stats", "--since", "3h").stdout  # the table people read
    assert (
        f"│ store.write_users │ {everything['count']} " in shown and "│ 500.00 │" in shown
    )  # max in ms
    assert "│ cache hit rate                │ n/a" in shown


BAD = (
    (("--since", "soon"), "--since: expected a duration"),
    (("--since", "0"), "--since: must be longer than zero"),
    (("--by", "user"), "Invalid value for '--by'"),
    (("--format", "yaml"), "Invalid value for '--format'"),
)


def test_bad_options_are_refused_and_nothing_is_written(url: str, tmp_path: Path) -> None:
    env = environment(url, tmp_path / "messages.jsonl")
    for args, says in BAD:
        assert says in drumbeat(env, "stats", *args, code=2).stderr
    drumbeat(env, "stats")  # a command that reads records no timings of its own
    store = open_store(url, migrate=False)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(timings)).scalar_one() == 0
    store.close()
