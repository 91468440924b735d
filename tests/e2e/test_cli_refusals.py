"""Settings that cannot work are refused by the command, in one line, before anything is
written: exit status 2, the setting's variable named, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drumbeat.campaigns import apply, plan_apply, read_campaign, set_status
from drumbeat.client import Drumbeat

DRUMBEAT = [sys.executable, "-m", "drumbeat"]


def run(
    tmp_path: Path, *args: str, url: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    return subprocess.run(
        [*DRUMBEAT, "--database-url", url or f"sqlite:///{tmp_path / 'd.db'}", *args],
        cwd=tmp_path,
        env={**clean, "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr


def assert_refused(done: subprocess.CompletedProcess[str], tmp_path: Path, *words: str) -> None:
    assert_one_line_refusal(done, *words)
    assert not (tmp_path / "d.db").exists()  # refused before the store was opened


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("fast", "expected a JSON object"),
        ('{"email": -5}', "email: Input should be greater than 0"),
        ('{"sms": 3}', "unknown channel 'sms': the channels are email, file, in_app, webhook"),
    ],
)
def test_a_rate_limit_that_cannot_work_is_refused(tmp_path, value, reason):
    done = run(tmp_path, "campaign", "list", DRUMBEAT_RATE_LIMITS=value)
    assert_refused(done, tmp_path, "DRUMBEAT_RATE_LIMITS", reason)


def test_rate_limits_per_channel_are_taken(tmp_path):
    done = run(tmp_path, "campaign", "list", DRUMBEAT_RATE_LIMITS='{"email": 50, "in_app": 2.5}')
    assert done.returncode == 0, done.stderr


def test_a_redis_url_is_taken_with_rate_limits_to_count(tmp_path):
    limits = {"DRUMBEAT_RATE_LIMITS": '{"email": 50}'}
    done = run(tmp_path, "campaign", "list", DRUMBEAT_REDIS_URL="redis://127.0.0.1:1/0", **limits)
    assert done.returncode == 0, done.stderr


def test_the_redis_cache_without_a_redis_url_is_refused(tmp_path):
    done = run(tmp_path, "campaign", "list", DRUMBEAT_CACHE="redis")
    assert_refused(done, tmp_path, "DRUMBEAT_CACHE=redis needs DRUMBEAT_REDIS_URL")


def test_a_redis_url_that_is_not_one_is_refused(tmp_path):
    limits = {"DRUMBEAT_RATE_LIMITS": '{"email": 50}'}
    done = run(tmp_path, "campaign", "list", DRUMBEAT_REDIS_URL="http://:secret@h/0", **limits)
    assert_refused(done, tmp_path, "DRUMBEAT_REDIS_URL", "expected redis://host")
    assert "secret" not in done.stderr


@pytest.mark.parametrize(
    ("how", "variable", "reason"),
    [
        ("env", "DRUMBEAT_BROKER_URL", "the broker must be RabbitMQ: amqp://"),
        ("option", "DRUMBEAT_BROKER_URL", "the broker must be RabbitMQ: amqp://"),
        ("option", "DRUMBEAT_REDIS_URL", "neither DRUMBEAT_CACHE=redis nor"),
    ],
)
def test_a_distributed_setting_that_cannot_work_is_refused(tmp_path, how, variable, reason):
    """A broker that is not RabbitMQ; Redis with nothing to do (it holds the user cache and
    the shared rate limits: without either it would do nothing)."""
    url = "redis://:secret@h/0"
    if how == "env":
        done = run(tmp_path, "campaign", "list", **{variable: url})
    else:
        option = "--broker-url" if "BROKER" in variable else "--redis-url"
        done = run(tmp_path, option, url, "campaign", "list")
    assert_refused(done, tmp_path, variable, reason)
    assert "secret" not in done.stderr  # a URL may carry a password: it is not echoed


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"DRUMBEAT_BROKER_HEARTBEAT": "10"}, "is set but DRUMBEAT_BROKER_URL is not"),
        ({"DRUMBEAT_BROKER_REPUBLISH_AFTER": "30"}, "is set but DRUMBEAT_BROKER_URL is not"),
        (
            {"DRUMBEAT_BROKER_HEARTBEAT": "0", "DRUMBEAT_BROKER_URL": "amqp://127.0.0.1:1//"},
            "greater than or equal to 1",
        ),
    ],
)
def test_a_broker_setting_that_would_do_nothing_is_refused(tmp_path, env, reason):
    """They act on RabbitMQ only: without a broker they would be ignored; a heartbeat of 0
    would turn the heartbeats off, and a silently dead connection would go unnoticed."""
    done = run(tmp_path, "campaign", "list", **env)
    assert_refused(done, tmp_path, next(iter(env)), reason)


@pytest.mark.parametrize(
    "variable", ["DRUMBEAT_BROKER_HEARTBEAT", "DRUMBEAT_BROKER_REPUBLISH_AFTER"]
)
def test_a_broker_setting_is_taken_with_a_broker(tmp_path, variable):
    broker = {"DRUMBEAT_BROKER_URL": "amqp://127.0.0.1:1//"}
    done = run(tmp_path, "campaign", "list", **{variable: "10"}, **broker)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (["worker", "--lane", "fast"], "`drumbeat worker` needs RabbitMQ"),
        (["run", "--scheduler-only"], "--scheduler-only needs RabbitMQ"),
    ],
)
def test_the_distributed_processes_need_a_broker(tmp_path, command, what):
    done = run(tmp_path, *command)
    assert_refused(done, tmp_path, "broker_url (DRUMBEAT_BROKER_URL): not set", what)


def test_an_archived_campaign_is_not_resumed_nor_applied_again(
    tmp_path, database_url, workspace_name
):
    definition = tmp_path / "drip.yaml"
    definition.write_text(
        "key: drip\nname: Drip\naudience: {attr: plan, eq: free}\n"
        "steps:\n  - send: {id: one, channel: email, subject: One, body: One}\n"
    )
    with Drumbeat(database_url, workspace=workspace_name) as db:
        campaign = read_campaign(definition)
        apply(plan_apply(campaign, db.store, db.ws), db.store, db.ws, db.clock(), activate=True)
        set_status(db.store, db.ws, "drip", "archived", db.clock())
    ws = {"DRUMBEAT_WORKSPACE": workspace_name}
    resumed = run(tmp_path, "campaign", "resume", "drip", url=database_url, **ws)
    assert_one_line_refusal(resumed, "campaign 'drip': archived, and archive is final")
    applied = run(tmp_path, "campaign", "apply", str(definition), url=database_url, **ws)
    assert_one_line_refusal(applied, "campaign 'drip': archived, and archive is final")
    with Drumbeat(database_url, workspace=workspace_name) as db:
        row = db.store.campaign(db.ws, "drip")
    assert row is not None and (row.status, row.version) == ("archived", 1)


@pytest.mark.parametrize(
    ("postgres", "reason"),
    [
        ("x", "not a PostgreSQL URL"),
        ("mysql://a@127.0.0.1/b", "not a PostgreSQL URL"),
        ("postgresql://someone:secret@127.0.0.1:1/test", "cannot create a database on"),
    ],
)
def test_a_benchmark_s_postgres_that_cannot_work_is_refused_in_one_line(tmp_path, postgres, reason):
    """A benchmark makes its databases on the server of --postgres: a URL that is not one, or
    a server that will not make them, is said in one line (the password hidden), not a
    traceback."""
    done = run(tmp_path, "bench", "idle", "--users", "100", "--postgres", postgres)
    assert_one_line_refusal(done, "--postgres", reason)
    assert "secret" not in done.stderr
