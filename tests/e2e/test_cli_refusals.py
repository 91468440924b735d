"""Settings that cannot work are refused by the command, in one line, before anything is
written: exit status 2, the setting's variable named, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DRUMBEAT = [sys.executable, "-m", "drumbeat"]


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    return subprocess.run(
        [*DRUMBEAT, "--database-url", f"sqlite:///{tmp_path / 'd.db'}", *args],
        cwd=tmp_path,
        env={**clean, "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_refused(done: subprocess.CompletedProcess[str], tmp_path: Path, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr
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


@pytest.mark.parametrize(
    ("how", "variable", "reason"),
    [
        ("env", "DRUMBEAT_BROKER_URL", "the distributed shape (Celery) is not built yet; unset it"),
        ("option", "DRUMBEAT_REDIS_URL", "the Redis user cache (distributed shape) is not built"),
    ],
)
def test_the_distributed_shape_is_refused_until_it_is_built(tmp_path, how, variable, reason):
    url = "amqp://guest:secret@127.0.0.1//" if "BROKER" in variable else "redis://:secret@h/0"
    if how == "env":
        done = run(tmp_path, "campaign", "list", **{variable: url})
    else:
        option = "--broker-url" if "BROKER" in variable else "--redis-url"
        done = run(tmp_path, option, url, "campaign", "list")
    assert_refused(done, tmp_path, variable, reason)
    assert "secret" not in done.stderr  # a URL may carry a password: it is not echoed
