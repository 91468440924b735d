"""The in-app channel on the real store (SQLite and PostgreSQL): inbox rows, resends, reads."""

from __future__ import annotations

from typing import Any

import pytest

from drumbeat.channels.base import Message, Outcome
from drumbeat.channels.in_app import InAppChannel, inbox_messages, mark_read, unread_count
from drumbeat.config import Settings
from drumbeat.store import open_store


@pytest.fixture
def store(database_url):
    store = open_store(database_url)
    yield store
    store.close()


@pytest.fixture
def ws(store, workspace_name):
    return store.workspace_id(workspace_name)


@pytest.fixture
def channel(store, clock):
    channel = InAppChannel(Settings(), store, clock=clock)
    yield channel
    channel.close()


def message(workspace: str, user_id: str, n: int, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "message_id": f"{workspace}/trial/s{n}/{user_id}/1",
        "workspace": workspace,
        "campaign": "trial",
        "step": f"s{n}",
        "user_id": user_id,
        "email": None,
        "subject": f"Subject {n}",
        "body": f"Body {n}",
    }
    return Message(**{**values, **fields})


def test_messages_land_in_the_users_inbox_newest_first(store, ws, workspace_name, channel, clock):
    batch = [message(workspace_name, "u1", 1), message(workspace_name, "u2", 2)]
    batch.append(message(workspace_name, "u1", 3))
    results = channel.send_batch(batch)
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    rows = inbox_messages(store, ws, "u1")
    assert [(r["subject"], r["body"], r["campaign_key"]) for r in rows] == [
        ("Subject 3", "Body 3", "trial"),
        ("Subject 1", "Body 1", "trial"),
    ]
    assert rows[0]["message_id"] == f"{workspace_name}/trial/s3/u1/1"
    assert rows[0]["created_at"] == clock.now
    assert rows[0]["read_at"] is None
    assert len(inbox_messages(store, ws, "u2")) == 1


def test_a_resend_is_a_no_op(store, ws, workspace_name, channel):
    batch = [message(workspace_name, "u1", 1), message(workspace_name, "u1", 2)]
    channel.send_batch(batch)
    again = channel.send_batch([*batch, batch[0]])
    assert [r.outcome for r in again] == [Outcome.SENT] * 3
    assert len(inbox_messages(store, ws, "u1")) == 2


def test_read_and_unread(store, ws, workspace_name, channel, clock):
    channel.send_batch([message(workspace_name, "u1", n) for n in (1, 2, 3)])
    newest, middle, oldest = (row["id"] for row in inbox_messages(store, ws, "u1"))
    assert unread_count(store, ws, "u1") == 3
    assert mark_read(store, ws, "u1", [oldest, newest], clock.now + 5) == 2
    assert mark_read(store, ws, "u1", [oldest], clock.now + 9) == 0  # first read time kept
    unread = inbox_messages(store, ws, "u1", unread_only=True)
    assert [row["id"] for row in unread] == [middle]
    read = {row["id"]: row["read_at"] for row in inbox_messages(store, ws, "u1")}
    assert read == {newest: clock.now + 5, middle: None, oldest: clock.now + 5}
    assert unread_count(store, ws, "u1") == 1
    assert mark_read(store, ws, "u1", [], clock.now) == 0


def test_pages_with_limit_and_before_id(store, ws, workspace_name, channel):
    channel.send_batch([message(workspace_name, "u1", n) for n in range(5)])
    first = inbox_messages(store, ws, "u1", limit=2)
    rest = inbox_messages(store, ws, "u1", limit=10, before_id=first[-1]["id"])
    assert [r["subject"] for r in first + rest] == [f"Subject {n}" for n in (4, 3, 2, 1, 0)]


def test_workspaces_are_isolated(store, ws, workspace_name, channel, clock):
    other_name = f"{workspace_name}-other"
    other = store.workspace_id(other_name)
    channel.send_batch([message(workspace_name, "u1", 1), message(other_name, "u1", 2)])
    [mine] = inbox_messages(store, ws, "u1")
    [theirs] = inbox_messages(store, other, "u1")
    assert (mine["subject"], theirs["subject"]) == ("Subject 1", "Subject 2")
    assert mark_read(store, ws, "u1", [theirs["id"]], clock.now) == 0
    assert inbox_messages(store, other, "u1", unread_only=True) == [theirs]


def test_an_unknown_workspace_fails_only_its_messages(store, ws, workspace_name, channel):
    results = channel.send_batch(
        [message(workspace_name, "u1", 1), message("no-such-workspace", "u1", 2)]
    )
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED]
    assert "no-such-workspace" in (results[1].error or "")
    assert len(inbox_messages(store, ws, "u1")) == 1
