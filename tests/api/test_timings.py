"""`drumbeat serve` writes what it timed into the store, like every working process: the
calls it stored show in `drumbeat stats` without stopping it (on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from drumbeat.metrics import GLOBAL
from drumbeat.store import Store
from tests.api.conftest import free_port, new_tenant, wait_until_up


def written_calls(store: Store, since: float) -> int:
    found = store.timing_totals((GLOBAL,), "query", since).by_name.get("store.write_calls")
    return 0 if found is None else found.count


def test_the_api_server_writes_its_timings_into_the_store(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    tenant = new_tenant(store)
    port, log = free_port(), tmp_path / "serve.log"
    env = {
        **os.environ,
        "DRUMBEAT_DATABASE_URL": database_url,
        "DRUMBEAT_STATS_FLUSH_SECONDS": "0.1",
    }
    command = [sys.executable, "-m", "drumbeat", "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log)
        since = time.time() // 60 * 60 - 60
        before = written_calls(store, since)
        for n in range(3):
            call = {"userId": f"u{n}", "traits": {"plan": "pro"}}
            reply = httpx.post(f"{url}/v1/identify", json=call, auth=tenant.auth(), timeout=10)
            assert reply.status_code == 200, reply.text
        deadline = time.monotonic() + 30
        while written_calls(store, since) < before + 3:
            assert time.monotonic() < deadline, "the server's timings never reached the store"
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)  # polling a condition, with a deadline
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "Traceback" not in log.read_text()
