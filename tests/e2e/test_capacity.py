"""`drumbeat capacity` as users run it, on SQLite and PostgreSQL: measure a small workload
(`drumbeat advance` over N users), ask the model for 2N, run 2N on a store of its own, and
hold the timing-free predictions to what the run did: batches exactly, store queries within
±25%. (Wall time is not asserted here: `drumbeat bench capacity` reports it.) A store with
no timings, and bad options, are refused with exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from drumbeat.model.attributes import format_timestamp
from tests.e2e.helpers import send, wait
from tests.e2e.running import environment, own_store, prepare
from tests.e2e.test_stats import drumbeat, stats

START = 1_767_571_200.0  # 2026-01-05T00:00:00Z
N = 40
SETTINGS = {"batch_size": "10", "workers": "1", "stats_flush_seconds": "0.2"}


def measured_run(url: str, users: int, tmp_path: Path) -> dict[str, str]:
    """`users` users through a two-step campaign, a tick an hour for two days."""
    prepare(url, [send("one"), wait("1d"), send("two")], users, at=START)
    env = environment(url, tmp_path / f"messages{users}.jsonl", **SETTINGS)
    drumbeat(env, "advance", "--to", format_timestamp(START + 2 * 86400), "--every", "1h")
    return env


def capacity(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = drumbeat(env, "capacity", "--campaigns", "1", "--format", "json", *args)
    found: dict[str, Any] = orjson.loads(done.stdout)
    return found


def test_predicts_a_run_twice_the_size(database_url: str, tmp_path: Path) -> None:
    with own_store(database_url) as small:
        predicted = capacity(measured_run(small, N, tmp_path), "--users", str(2 * N))
    if database_url.startswith("sqlite"):  # a store of its own: another file
        database_url = f"sqlite:///{tmp_path / 'large.db'}"
    with own_store(database_url) as large:
        ran = stats(measured_run(large, 2 * N, tmp_path), "--by", "stage")
    [tick] = [line for line in ran["names"] if line["name"] == "stage.tick"]
    [batch] = [line for line in ran["names"] if line["name"] == "stage.batch"]
    ticks = tick["count"]
    assert batch["count"] == 2 * (2 * N // 10)  # entered, then a day later advanced
    assert predicted["batches_per_tick"] * ticks == pytest.approx(batch["count"])
    assert predicted["users_per_tick"] * ticks == pytest.approx(ran["users"])
    assert predicted["messages_per_tick"] * ticks == pytest.approx(ran["messages"])
    queries = predicted["store_queries_per_tick"] * ticks
    assert 0.75 <= queries / ran["store_queries"] <= 1.25, (queries, ran["store_queries"])
    assert predicted["workers_per_lane"] == {"fast": 1}
    assert predicted["tick_seconds"] > 0 and predicted["runs_out_first"] in predicted["use"]


def test_asks_for_work_first_and_refuses_bad_options(database_url: str, tmp_path: Path) -> None:
    with own_store(database_url) as url:
        prepare(url, [send("one")], 3, at=START)
        env = environment(url, tmp_path / "messages.jsonl")
        empty = drumbeat(env, "capacity", "--users", "10", "--campaigns", "1", code=2)
        assert "run some work first" in empty.stderr
        bad = drumbeat(env, "capacity", "--users", "10", "--campaigns", "1", "--since", "x", code=2)
        assert "--since" in bad.stderr
        drumbeat(env, "capacity", "--users", "0", "--campaigns", "1", code=2)
