"""The key that signs unsubscribe links and webhook bodies: random per workspace and kept in
the store unless DRUMBEAT_SECRET_KEY is set; a guessable DRUMBEAT_SECRET_KEY is refused."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator

import orjson
import pytest

from drumbeat.channels.keys import SETTING, SigningKeys, stored_key
from drumbeat.channels.tokens import InvalidToken, unsubscribe_token
from drumbeat.channels.webhook import WebhookChannel
from drumbeat.client import Drumbeat
from drumbeat.config import settings
from drumbeat.store import Store, open_store
from tests.e2e.test_cli_refusals import assert_refused, run

EXPLICIT = "an-explicit-key-of-the-tests"


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRUMBEAT_SECRET_KEY", raising=False)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    try:
        yield opened
    finally:
        opened.close()


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_each_workspace_gets_a_random_key_kept_in_the_store(database_url, store, workspace_name):
    other = f"{workspace_name}-other"
    for name in (workspace_name, other):
        store.workspace_id(name)
    key = stored_key(store, workspace_name)
    assert len(key) >= 40  # 32 random bytes
    assert stored_key(store, other) != key  # a workspace's links cannot be made with another's
    again = open_store(database_url)
    try:
        assert stored_key(again, workspace_name) == key
    finally:
        again.close()
    script = (
        "import hashlib, sys; from drumbeat.store import open_store; "
        "from drumbeat.channels.keys import stored_key; "
        "key = stored_key(open_store(sys.argv[1]), sys.argv[2]); "
        "print(hashlib.sha256(key.encode()).hexdigest())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, database_url, workspace_name],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == fingerprint(key)  # another process signs with the same key


def test_first_uses_racing_end_with_one_key(database_url, workspace_name):
    setup = open_store(database_url)
    setup.workspace_id(workspace_name)
    setup.close()
    racers = 6
    stores = [open_store(database_url) for _ in range(racers)]
    start = threading.Barrier(racers)
    keys: list[str] = []

    def first_use(store: Store) -> None:
        start.wait(timeout=30)
        keys.append(stored_key(store, workspace_name))

    threads = [threading.Thread(target=first_use, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store in stores:
        store.close()
    assert len(keys) == racers
    assert len(set(keys)) == 1


def test_unsubscribe_links_verify_with_the_stored_key_and_not_the_old_default(
    database_url, workspace_name, tmp_path
):
    out = tmp_path / "sent.jsonl"
    config = settings(database_url=database_url, workspace=workspace_name, outbox_file=str(out))
    with Drumbeat(config=config) as db:
        db.clock.set(1_767_571_200.0)
        db.identify("u1", {"plan": "free", "email": "u1@example.com"})
        send = {"id": "hello", "channel": "email", "subject": "Hi", "body": "{{ unsubscribe_url }}"}
        audience = {"attr": "plan", "eq": "free"}
        db.campaigns.apply(
            {"key": "bye", "name": "Bye", "audience": audience, "steps": [{"send": send}]},
            activate=True,
        )
        assert db.advance("2026-01-05T01:00:00Z").sent == {"sent": 1}
        (line,) = out.read_bytes().splitlines()
        token = orjson.loads(line)["body"].rsplit("/", 1)[1]
        assert db.unsubscribe_user(token) == "u1"
        with pytest.raises(InvalidToken, match="does not verify"):
            db.unsubscribe_user(unsubscribe_token("change-me", workspace_name, "u1"))
        stored = db.store.get_setting(db.ws, SETTING)
        assert unsubscribe_token(stored, workspace_name, "u1") == token


def test_the_key_is_read_once_not_per_message(store, workspace_name):
    ws = store.workspace_id(workspace_name)
    keys = SigningKeys(settings(), store)
    first = keys(workspace_name)
    store.set_setting(ws, SETTING, "changed-behind-its-back")
    assert [keys(workspace_name) for _ in range(3)] == [first] * 3  # no store read again
    assert SigningKeys(settings(), store)(workspace_name) == "changed-behind-its-back"


def test_an_explicit_key_is_used_and_nothing_is_stored(database_url, store, workspace_name):
    ws = store.workspace_id(workspace_name)
    keys = SigningKeys(settings(secret_key=EXPLICIT), store)
    assert keys(workspace_name) == EXPLICIT
    assert store.get_setting(ws, SETTING) is None
    assert EXPLICIT not in repr(settings(secret_key=EXPLICIT))  # never printed


def test_without_a_key_or_a_store_a_channel_cannot_be_built():
    with pytest.raises(ValueError, match="DRUMBEAT_SECRET_KEY is unset and there is no store"):
        WebhookChannel(settings(), None)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("change-me", "is the old default, published in the docs"),
        ("fifteen-chars!!", "is shorter than 16 characters"),
    ],
)
def test_a_guessable_key_is_refused_by_the_command(tmp_path, key, reason):
    done = run(tmp_path, "campaign", "list", DRUMBEAT_SECRET_KEY=key)
    assert_refused(done, tmp_path, "DRUMBEAT_SECRET_KEY", reason)
    assert key not in done.stderr + done.stdout
