"""The curl examples of docs/api.md, run as written against a real `drumbeat serve` (only
the documented address is swapped for the test server's)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import orjson
import pytest

from tests.api.conftest import Tenant
from tests.e2e.test_docs import ROOT

DOC = (ROOT / "docs" / "api.md").read_text()
README = (ROOT / "README.md").read_text()
RUN = re.compile(
    r"<!-- run-by: tests/api/test_docs_api.py[^>]*-->\n```sh\n(.*?)```(?:\n\n```json\n(.*?)```)?",
    re.S,
)


def run_block(
    block: str, server: str, tenant: Tenant, env: dict[str, str] | None = None, cwd: str = "."
) -> str:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = block.replace("http://127.0.0.1:8000", server)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, "DRUMBEAT_KEY": tenant.key, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_tracking_examples_store_what_they_say(server: str, tenant: Tenant):
    (tracking, _), (bad, answer) = RUN.findall(DOC)
    assert run_block(tracking, server, tenant) == '{"success":true}' * 3
    users = tenant.store.load_users(tenant.ws, ["u1", "u2"])
    assert (users["u1"].email, users["u1"].timezone) == ("ada@example.com", "Europe/Paris")
    assert users["u2"].attributes == {"plan": "free"}
    assert tenant.store.count_events(tenant.ws) == 2

    assert orjson.loads(run_block(bad, server, tenant)) == orjson.loads(answer)
    assert tenant.store.load_users(tenant.ws, ["u3"]) == {}


def test_the_readme_segment_example_sends_to_the_server(server: str, tenant: Tenant):
    section = README.split("## Sending data over HTTP", 1)[1]
    (code,) = re.findall(r"```py\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    code = code.replace("dbk_write_…", tenant.key).replace("http://127.0.0.1:8000", server)
    exec(compile(code, "README.md", "exec"), {})
    assert tenant.store.load_users(tenant.ws, ["u1"])["u1"].attributes == {"plan": "free"}
    assert tenant.store.count_events(tenant.ws) == 1
