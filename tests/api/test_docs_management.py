"""The management and deliveries examples of docs/api.md, run as written in order against a
real `drumbeat serve` (only the documented address and workspace name are swapped for the
test's), each answer checked."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import orjson

from tests.api.conftest import Tenant
from tests.api.seed import dead_message, seed
from tests.api.test_docs_api import DOC, run_block

RUN = re.compile(
    r"<!-- run-by: tests/api/test_docs_management.py[^>]*-->\n```sh\n(.*?)```"
    r"(?:\n\n```json\n(.*?)```)?",
    re.S,
)


def lines(output: str) -> list[object]:
    return [orjson.loads(line) for line in output.splitlines()]


def test_the_management_examples_do_what_they_say(
    server: str, database_url: str, admin: Tenant, tmp_path: Path
):
    batch_id = seed(admin)  # users u0..u19, campaign drip, a dead batch
    message_id = dead_message(admin)
    name = admin.store.workspace_name(admin.ws)
    env = {
        "DRUMBEAT_ADMIN_KEY": admin.key,
        "DRUMBEAT_DATABASE_URL": database_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # drumbeat
    }

    def run(block: str) -> str:
        return run_block(block.replace("acme", name), server, admin, env, str(tmp_path))

    blocks = RUN.findall(DOC)
    assert len(blocks) == 6
    (create, created), (check, refused), (moves, _), (user, _), (pages, _), (bounce, told) = blocks
    assert orjson.loads(run(create)) == orjson.loads(created)
    assert orjson.loads(run(check)) == orjson.loads(refused)
    assert admin.store.campaign(admin.ws, "broken") is None

    activated, paused, resumed, listed, shown, stats = lines(run(moves))
    assert [activated, paused, resumed] == [
        {"key": "welcome", "status": s} for s in ("active", "paused", "active")
    ]
    assert [c["key"] for c in listed] == ["drip", "welcome"]  # type: ignore[index, union-attr]
    assert shown["definition"]["key"] == "welcome"  # type: ignore[index, call-overload]
    assert (stats["split"], stats["members"]) == ("offer", {})  # type: ignore[call-overload, index]

    got, erased = lines(run(user))
    assert got["user_id"] == "u1" and got["email"] == "u1@example.com"  # type: ignore[index, call-overload]
    assert erased == {"user_id": "u1", "erased": True}
    assert admin.store.load_users(admin.ws, ["u1"]) == {}

    listed_page, retried, sent_again = lines(run(pages))
    assert listed_page == {"items": [], "next_cursor": None}
    assert (retried["id"], retried["status"]) == (batch_id, "pending")  # type: ignore[index, call-overload]
    assert (sent_again["id"], sent_again["status"]) == (message_id, "pending")  # type: ignore[index, call-overload]

    assert orjson.loads(run(bounce)) == orjson.loads(told)
    addresses = ["gone@example.com", "angry@example.com"]
    assert admin.store.suppressed(admin.ws, addresses) == set(addresses)
