"""Dead messages put back and sent, on SQLite and PostgreSQL, as users run it: two campaigns
post to a webhook (a real HTTP server on localhost) that answers 503 until it is mended, so
an advance runs out of tries and their messages end dead. Retried with `drumbeat
outbox retry` (a process) or over HTTP (`POST /v1/outbox/{id}/retry` on a real `drumbeat
serve`), each is then delivered exactly once by the next advance. A dry run changes
nothing, a message that is not dead is refused, an unknown id or campaign is a one-line
error (exit 2) that changes nothing, and another workspace's dead messages are untouched."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from drumbeat.client import Drumbeat
from drumbeat.config import settings
from drumbeat.engine.member import OutMessage
from drumbeat.pipeline.clock import StoreClock
from drumbeat.store.keys import create_key
from drumbeat.store.schema import outbox
from tests.api.conftest import serving
from tests.conftest import archive_campaigns
from tests.e2e.test_cli_commands import cli  # noqa: F401  (the fixture)
from tests.integration.test_webhook import ServedInThread
from tests.world import HOUR, MONDAY

USERS = [f"u{i}" for i in range(4)]
ATTEMPTS = 2


class FlakyHook(ServedInThread):
    """A webhook endpoint that answers 503 until `mend()`, then 200; counts the calls and,
    by Idempotency-Key (the message), the deliveries (200s)."""

    def __init__(self) -> None:
        self.calls = 0
        self.delivered: Counter[str] = Counter()
        self.mended = threading.Event()
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with peer.lock:
                    peer.calls += 1
                    if peer.mended.is_set():
                        peer.delivered[self.headers["Idempotency-Key"]] += 1
                self.send_response(200 if peer.mended.is_set() else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    def mend(self) -> None:
        self.mended.set()


@pytest.fixture
def hook():
    with FlakyHook() as server:
        yield server


@pytest.fixture
def db(database_url: str, workspace_name: str):
    """The Python API with two tries a message, the second a twentieth of a second after
    the first (real time), which `advance` waits for at its end: an advance that meets the
    broken hook leaves its messages dead."""
    config = settings(
        database_url=database_url,
        workspace=workspace_name,
        webhook_allow=["127.0.0.1"],
        send_attempts=ATTEMPTS,
        retry_after=0.05,
        advance_retry_wait=30,
    )
    db = Drumbeat(config=config)
    db.clock = clock = StoreClock(db.store)
    clock.set(MONDAY)
    yield db
    db.close()


def hook_campaign(key: str, url: str) -> dict[str, Any]:
    step = {"send": {"id": "ping", "channel": "webhook", "url": url, "body": "hi"}}
    return {"key": key, "name": key, "audience": {"attr": "plan", "eq": "free"}, "steps": [step]}


@pytest.fixture
def dead(db: Drumbeat, hook: FlakyHook) -> list[int]:
    """Campaigns `one` and `two`, a message to each of USERS, all dead: their ids, those of
    `one` first (two batches worked at once may have their rows' ids interleaved)."""
    db.identify_many({"user_id": u, "traits": {"plan": "free"}} for u in USERS)
    db.campaigns.apply([hook_campaign(k, hook.url()) for k in ("one", "two")], activate=True)
    db.advance(MONDAY + HOUR)
    found = db.outbox(limit=None)
    assert [(m.status, m.attempts) for m in found] == [("dead", ATTEMPTS)] * 2 * len(USERS)
    assert {m.error for m in found} == {"HTTP 503 Service Unavailable"}
    assert (hook.calls, hook.delivered) == (ATTEMPTS * 2 * len(USERS), Counter())
    return [m.id for m in sorted(found, key=lambda m: (m.campaign, m.id))]


def jsonl(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def delivered_once(db: Drumbeat, hook: FlakyHook) -> None:
    """The next advance sends every message, each exactly once."""
    db.advance(MONDAY + 2 * HOUR)
    assert {m.status for m in db.outbox(limit=None)} == {"sent"}
    assert sorted(hook.delivered.values()) == [1] * 2 * len(USERS)


def test_retried_from_the_command_line_and_delivered_once(cli, db, hook, dead):  # noqa: F811
    listed = jsonl(cli("outbox", "--status", "dead", "--campaign", "one", "--format", "jsonl"))
    assert [(m["id"], m["attempts"], m["error"]) for m in listed] == [
        (i, ATTEMPTS, "HTTP 503 Service Unavailable") for i in dead[: len(USERS)]
    ]
    before = db.outbox(limit=None)
    preview = cli("outbox", "retry", "--all-dead", "--campaign", "one", "--dry-run")
    shown = ", ".join(map(str, dead[: len(USERS)]))
    assert f"would retry {len(USERS)} messages: {shown} (nothing changed)" in preview
    assert db.outbox(limit=None) == before
    hook.mend()
    done = cli("outbox", "retry", "--all-dead", "--campaign", "one")
    assert f"retried {len(USERS)} messages: {shown}; the next dispatch sends them" in done
    back = sorted(db.outbox(limit=None), key=lambda m: (m.campaign, m.id))
    assert [(m.campaign, m.status, m.attempts, m.error) for m in back] == [
        ("one", "pending", 0, None)
    ] * len(USERS) + [("two", "dead", ATTEMPTS, "HTTP 503 Service Unavailable")] * len(USERS)
    cli("outbox", "retry", *map(str, dead[len(USERS) :]))
    delivered_once(db, hook)
    assert cli("outbox", "retry", "--all-dead") == "no dead messages to retry\n"


def test_retried_over_http_and_delivered_once(cli, db, hook, dead, database_url, tmp_path):  # noqa: F811
    _, key = create_key(db.store, db.ws, "admin", time.time())
    with serving(database_url, tmp_path / "serve.log") as server:

        def retry(message_id: int) -> httpx.Response:
            url = f"{server}/v1/outbox/{message_id}/retry"
            return httpx.post(url, auth=(key, ""), timeout=30)

        for message_id in dead:
            answer = retry(message_id)
            assert answer.status_code == 200, answer.text
            retried = answer.json()
            assert (retried["id"], retried["status"], retried["attempts"]) == (
                message_id,
                "pending",
                0,
            )
            assert retried["error"] is None
        again = retry(dead[0])
        assert again.status_code == 409
        assert again.json()["problems"] == [
            {"path": "status", "message": f"message {dead[0]} is pending, not dead"}
        ]
        assert retry(999_999_999).status_code == 404
    hook.mend()
    delivered_once(db, hook)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("{dead}", "999999999"), "invalid messages to retry: message 999999999: not in"),
        (("{dead}", "{pending}"), "message {pending} is pending, not dead; nothing was retried"),
        (("--all-dead", "--campaign", "nope"), "no campaign 'nope' in workspace"),
        (("--campaign", "one", "{dead}"), "campaign picks among all dead messages"),
        ((), "name the messages to retry by id, or all dead ones, not both"),
        (("{dead}", "--all-dead"), "name the messages to retry by id, or all dead ones"),
    ],
)
def test_a_refusal_is_one_line_and_changes_nothing(cli, db, dead, args, says):  # noqa: F811
    db.retry_messages([dead[-1]])  # pending again
    ids = {"dead": dead[0], "pending": dead[-1]}
    before = db.outbox(limit=None)
    refused = cli("outbox", "retry", *(a.format(**ids) for a in args), code=2)
    assert refused.startswith("error: ") and says.format(**ids) in refused
    assert refused.count("\n") == 1
    assert db.outbox(limit=None) == before


def test_a_listing_option_before_retry_is_refused(cli, db, dead):  # noqa: F811
    refused = cli("outbox", "--status", "dead", "retry", str(dead[0]), code=2)
    assert "--status: options of the listing, not of `outbox retry`" in refused
    assert [m.status for m in db.outbox(limit=None)] == ["dead"] * len(dead)


def test_another_workspaces_dead_messages_are_never_retried(cli, db, dead, database_url):  # noqa: F811
    other = Drumbeat(database_url, workspace=f"{db.config.workspace}-other")
    try:
        theirs = dead_message(other)
        refused = cli("outbox", "retry", str(theirs), code=2)
        assert f"message {theirs}: not in workspace '{db.config.workspace}'" in refused
        assert len(jsonl(cli("outbox", "--format", "jsonl"))) == len(dead)  # ours only
        retried = db.retry_messages(all_dead=True)
        assert [m.id for m in retried] == sorted(dead)  # in id order
        [still] = other.outbox()
        assert (still.id, still.status) == (theirs, "dead")
        assert [m.id for m in other.retry_messages(all_dead=True, dry_run=True)] == [theirs]
    finally:
        archive_campaigns(database_url, other.config.workspace)
        other.close()


def dead_message(db: Drumbeat) -> int:
    """A message of `db`'s workspace, made dead: its id."""
    message = OutMessage(f"{db.config.workspace}/x/s/u0/1", "s", "u0", 1, "webhook", {}, 0.0)
    with db.store.writing() as conn:
        db.store.insert_messages(conn, db.ws, "x", [message])
        conn.execute(update(outbox).where(outbox.c.workspace_id == db.ws).values(status="dead"))
    [row] = db.outbox()
    return row.id
