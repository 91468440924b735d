"""Bad input through the `drumbeat` command, as a user meets it: a file's bytes (not UTF-8, a
NUL, a byte-order mark) and a database URL that cannot work. Each is one line naming what
and where, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drumbeat.errors import BadSetting
from drumbeat.store import open_store
from tests.conftest import PG_ADMIN_URL

DRUMBEAT = [sys.executable, "-m", "drumbeat"]


@pytest.fixture
def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DRUMBEAT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command prints, once checked for exit 2 and no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("error: invalid"), done.stderr
    return done.stderr


# ---- a file's bytes ----------------------------------------------------------------------------


def test_a_file_that_is_not_utf8_or_holds_a_nul_is_refused_by_the_cli(
    database_url, workspace_name, client, tmp_path, env
):
    store = ("--database-url", database_url, "--workspace", workspace_name)
    users = tmp_path / "users.jsonl"
    bad_line = b'{"user_id":"u2","traits":{"plan":"fr\xffee"}}\n'
    users.write_bytes(b'{"user_id":"u1"}\n' + bad_line)
    assert "line 2: not valid UTF-8" in refused(
        run(*store, "import", "users", str(users), cwd=tmp_path, env=env)
    )
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id":"u1","event":"login","properties":{"a":["\\u0000"]}}\n')
    assert "line 1: properties.a[0]: contains a NUL character" in refused(
        run(*store, "import", "events", str(events), cwd=tmp_path, env=env)
    )
    assert client.store.count_users(client.ws) == 0
    assert client.store.count_events(client.ws) == 0
    skipped = run(*store, "import", "users", str(users), "--skip-invalid", cwd=tmp_path, env=env)
    assert skipped.returncode == 0 and "line 2: not valid UTF-8" in skipped.stderr
    assert users.with_name("users.jsonl.rejects").read_bytes() == bad_line
    assert list(client.users(["u1", "u2"])) == ["u1"]


def test_a_csv_with_a_byte_order_mark_imports_from_the_cli(
    database_url, workspace_name, client, tmp_path, env
):
    users = tmp_path / "users.csv"
    users.write_bytes(b"\xef\xbb\xbfuser_id,plan\nu1,free\n")
    store = ("--database-url", database_url, "--workspace", workspace_name)
    done = run(*store, "import", "users", str(users), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert client.users(["u1"])["u1"].attributes == {"plan": "free"}


# ---- the database URL ---------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pg_url(database: str, port: int = 0) -> str:
    """The test server's URL with a password (trust auth ignores it) that must never show."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgres@", "postgres:s3cret@")
    if port:
        base = base.rsplit(":", 1)[0] + f":{port}"
    return f"{base}/{database}"


BAD_URLS = {
    "sqlite, no directory": (lambda tmp: f"sqlite:///{tmp}/missing/d.db", "no directory "),
    "not a URL": (lambda tmp: "drumbeat.db", "not a database URL: 'drumbeat.db'"),
    "unknown scheme": (lambda tmp: "mysql://u:s3cret@db/x", "unknown database 'mysql'"),
    "no such database": (
        lambda tmp: pg_url("drumbeat_no_such_db"),
        'database "drumbeat_no_such_db" does not exist',
    ),
    "closed port": (lambda tmp: pg_url("test", closed_port()), "connection refused"),
}


@pytest.mark.parametrize("case", BAD_URLS)
def test_a_database_url_that_cannot_work_is_one_line_naming_it(case, tmp_path, env, pg_database):
    url_of, reason = BAD_URLS[case]
    url = url_of(tmp_path)
    users = tmp_path / "users.jsonl"
    users.write_text('{"user_id":"u1"}\n')
    commands = [["import", "users", str(users)], ["attributes", "list"], ["db", "upgrade"]]
    for command in commands if case == "closed port" else commands[:1]:
        done = run(*command, cwd=tmp_path, env={**env, "DRUMBEAT_DATABASE_URL": url})
        line = refused(done)
        assert line.startswith("error: DRUMBEAT_DATABASE_URL: ") and reason in line
        assert "s3cret" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.jsonl"]  # nothing written


def test_the_python_api_refuses_a_database_url_that_cannot_work(tmp_path, pg_database):
    from drumbeat.client import Drumbeat

    with pytest.raises(BadSetting, match=r"^DRUMBEAT_DATABASE_URL: cannot connect to .*:\*\*\*@"):
        Drumbeat(pg_url("test", closed_port()))
    with pytest.raises(BadSetting, match="no directory"):
        Drumbeat(f"sqlite:///{tmp_path}/missing/d.db")


def test_a_server_that_never_answers_fails_in_seconds(pg_database):
    """A port that takes connections but says nothing (a firewall, a wrong service)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        start = time.monotonic()
        with pytest.raises(BadSetting, match="connection timeout expired"):
            open_store(pg_url("test", silent.getsockname()[1]))
        assert time.monotonic() - start < 15
