"""`drumbeat workspace` and `drumbeat key` as a person runs them, and `serve` without its extra."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from drumbeat.store.schema import api_keys


def drumbeat(database_url: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "drumbeat", *args],
        env={**os.environ, "DRUMBEAT_DATABASE_URL": database_url, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def refused_within(url: str, call: Any, token: str, *, seconds: float) -> None:
    """Polls until `token` gets 401, failing past `seconds`."""
    deadline = time.monotonic() + seconds
    while httpx.post(url, json=call, auth=(token, "")).status_code != 401:
        assert time.monotonic() < deadline, f"a revoked key still works after {seconds} s"
        time.sleep(0.05)  # polling a condition, with a deadline


def test_workspace_and_key_lifecycle(database_url: str, server: str, store):
    name = f"cli-[{uuid.uuid4().hex[:8]}]"  # brackets: Rich markup must not eat them
    created = drumbeat(database_url, "workspace", "create", name)
    assert created.stdout.startswith(f"workspace '{name}' created"), created.stderr
    again = drumbeat(database_url, "workspace", "create", name)
    assert again.returncode == 2
    assert f"a workspace named '{name}' exists already" in again.stderr
    listed = drumbeat(database_url, "workspace", "list", "--format", "jsonl").stdout
    assert name in [orjson.loads(line)["name"] for line in listed.splitlines()]

    made = drumbeat(database_url, "key", "create", "--workspace", name, "--scope", "write")
    token = made.stdout.strip()
    assert made.returncode == 0, made.stderr
    assert token.startswith("dbk_write_")
    with store.engine.connect() as conn:  # the key itself is nowhere in the store
        rows = [dict(r._mapping) for r in conn.execute(select(api_keys))]
    assert token not in repr(rows)

    keys = drumbeat(database_url, "key", "list", "--workspace", name, "--format", "jsonl")
    (key,) = [orjson.loads(line) for line in keys.stdout.splitlines()]
    assert token.startswith(key["prefix"].rstrip("…"))
    assert token not in keys.stdout
    assert (key["scope"], key["revoked_at"]) == ("write", None)

    call = {"userId": "u", "event": "E"}
    url = f"{server}/v1/track"
    assert httpx.post(url, json=call, auth=(token, "")).status_code == 200
    assert (
        drumbeat(database_url, "key", "revoke", str(key["id"]), "--workspace", name).returncode == 0
    )
    # the server holds a key it looked up for DRUMBEAT_API_KEY_CACHE_SECONDS (2 by default)
    refused_within(url, call, token, seconds=2 + 3)


def test_key_commands_refuse_bad_input_in_one_line(database_url: str):
    missing = drumbeat(database_url, "key", "create", "--workspace", "nowhere", "--scope", "write")
    assert missing.returncode == 2
    assert "no workspace named 'nowhere'" in missing.stderr
    assert "Traceback" not in missing.stderr
    name = f"cli-{uuid.uuid4().hex[:8]}"
    drumbeat(database_url, "workspace", "create", name)
    scope = drumbeat(database_url, "key", "create", "--workspace", name, "--scope", "root")
    assert scope.returncode == 2
    assert "--scope: 'root': use one of write, admin" in scope.stderr
    other = drumbeat(database_url, "key", "revoke", "1", "--workspace", name)
    assert other.returncode == 2  # key 1 belongs to another workspace, if to any
    assert "no live key 1 in this workspace" in other.stderr


def test_serve_without_the_api_extra_names_it(database_url: str, tmp_path: Path):
    blocker = tmp_path / "fastapi"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('fastapi is not installed')\n")
    run = drumbeat(database_url, "serve", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2
    assert "pip install 'drumbeat[api]'" in run.stderr


def test_serve_with_two_workers_stores_every_call(database_url: str, tmp_path: Path, store):
    from tests.api.conftest import free_port, new_tenant, wait_until_up

    tenant = new_tenant(store)
    port = free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "drumbeat", "serve", "--port", str(port), "--workers", "2"]
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": database_url}
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log)
        with httpx.Client(base_url=url, auth=(tenant.key, "")) as client:
            for n in range(20):  # new connections, spread over both workers
                call = {"userId": f"w{n}", "event": "E", "messageId": f"w-{n}"}
                reply = client.post("/v1/track", json=call, headers={"connection": "close"})
                assert reply.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert store.count_events(tenant.ws) == 20
    assert store.count_users(tenant.ws) == 20


def test_serve_refuses_a_workspace_option_it_would_ignore(database_url: str):
    run = drumbeat(database_url, "--workspace", "acme", "serve")
    assert run.returncode == 2
    assert "--workspace: each request's key names its workspace" in run.stderr
