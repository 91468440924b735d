"""A real `drumbeat serve` process per store backend, shared by the module's tests; each test
makes its own workspaces and keys, so tests never see each other's data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from drumbeat.store import Store, open_store
from drumbeat.store.keys import create_key, create_workspace
from tests.conftest import archive_campaigns


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The root `database_url`, held for a module: one server per backend, not per test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('api') / 'drumbeat.db'}"
    return str(request.getfixturevalue("pg_database"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"drumbeat serve exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling a condition, with a deadline
    pytest.fail(f"drumbeat serve did not answer /healthz within 30 s:\n{log.read_text()}")


@contextmanager
def serving(database_url: str, log: Path, **env: str) -> Iterator[str]:
    """A `drumbeat serve` on a free localhost port, with these DRUMBEAT_* settings added to
    the environment, for as long as the `with` lasts: its base URL."""
    port = free_port()
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": database_url, **env}
    command = [sys.executable, "-m", "drumbeat", "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running `drumbeat serve` on a free localhost port."""
    with serving(database_url, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


@dataclass
class Tenant:
    """A workspace of its own and a write key for it."""

    ws: int
    key: str
    store: Store
    name: str

    def auth(self) -> tuple[str, str]:
        return (self.key, "")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    yield opened
    opened.close()


def new_tenant(store: Store, scope: str = "write") -> Tenant:
    name = f"api-{uuid.uuid4().hex[:12]}"
    ws = create_workspace(store, name, time.time())
    _key_id, token = create_key(store, ws, scope, time.time())
    return Tenant(ws, token, store, name)


@pytest.fixture
def tenant(store: Store) -> Tenant:
    return new_tenant(store)


@pytest.fixture
def admin(store: Store, database_url: str) -> Iterator[Tenant]:
    """A workspace with an admin key; at the end its campaigns are archived and its work
    ended, as `workspace_name` does (another test's tick would take them)."""
    made = new_tenant(store, "admin")
    yield made
    archive_campaigns(database_url, store.workspace_name(made.ws))
