"""The inbox, CORS, unsubscribe and rate-limit examples of docs/api.md, run as written against
a real `drumbeat serve` on a store of their own (only the documented address is swapped for
the test server's), each compared with the answer the document shows after it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from drumbeat.channels.base import Message
from drumbeat.channels.in_app import InAppChannel
from drumbeat.config import settings
from drumbeat.store import Store, open_store
from drumbeat.store.keys import create_key
from tests.api.conftest import serving
from tests.e2e.test_docs import ROOT

DOC = (ROOT / "docs" / "api.md").read_text()
BLOCK = re.compile(
    r"<!-- run-by: tests/api/test_docs_enduser.py[^>]*-->\n```sh\n(.*?)```\n\n```\w+\n(.*?)```",
    re.S,
)
INBOX, PREFLIGHT, UNSUBSCRIBE, RATE = BLOCK.findall(DOC)
NINE_AM = 1_767_603_600.0  # 2026-01-05T09:00:00Z


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    url = f"sqlite:///{tmp_path / 'drumbeat.db'}"
    store = open_store(url)
    yield url, store
    store.close()


def run_block(block: str, server: str, url: str, **env: str) -> str:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = block.replace("http://127.0.0.1:8000", server)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**clean, "PATH": path, "DRUMBEAT_DATABASE_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def words(text: str) -> list[str]:
    return text.split()


def test_the_inbox_cors_and_unsubscribe_examples(database, tmp_path: Path):
    url, store = database
    ws = store.workspace_id("default", now=NINE_AM)
    welcome = Message("default/welcome/hello/u1/1", "default", "welcome", "hello", "u1", None,
                      "Welcome!", "Hello u1")  # fmt: skip
    InAppChannel(settings(database_url=url), store, clock=lambda: NINE_AM).send_batch([welcome])
    cors = {"DRUMBEAT_CORS_ORIGINS": "https://app.example.com"}
    with serving(url, tmp_path / "serve.log", **cors) as server:
        inbox, answers = INBOX
        printed = run_block(inbox, server, url).splitlines()
        assert [orjson.loads(line) for line in printed] == [
            orjson.loads(line) for line in re.sub(r",\n ", ",", answers).splitlines()
        ]
        assert words(run_block(PREFLIGHT[0], server, url)) == words(PREFLIGHT[1])

        public = {"DRUMBEAT_PUBLIC_URL": server}
        assert words(run_block(UNSUBSCRIBE[0], server, url, **public)) == words(UNSUBSCRIBE[1])
    assert store.load_users(ws, ["u1"])["u1"].unsubscribed


def test_the_rate_limit_example(database, tmp_path: Path):
    url, store = database
    ws = store.workspace_id("default", now=time.time())
    _id, key = create_key(store, ws, "write", time.time())
    with serving(url, tmp_path / "serve.log", DRUMBEAT_API_RATE_LIMIT="0.2") as server:
        printed = run_block(RATE[0], server, url, DRUMBEAT_KEY=key)
    assert words(printed) == words(RATE[1])
    assert store.count_events(ws) == 1
