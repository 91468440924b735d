"""Dead rows back to pending (store/dead.py), on both stores: a retried message is due at the
store's time it was retried, its tries and error cleared, and comes back as it was; two
retries of one message at once put it back once, the other refused (the rows read stay
locked until the update), never both."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text, update

from drumbeat.engine.member import OutMessage
from drumbeat.store import Store, open_store
from drumbeat.store.dead import NotDead
from drumbeat.store.schema import outbox

NOW = 1_767_571_200.0  # the store's clock (virtual)
REAL = 1_000_000.0  # the real clock, as a test gives it


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = open_store(database_url)
    yield store
    store.close()


def dead_message(store: Store, workspace: str) -> tuple[int, int]:
    """(workspace id, message id) of a message on a channel of the test's own, dead after
    5 tries (the PostgreSQL database is shared: a claim names the channel)."""
    ws = store.workspace_id(workspace)
    message = OutMessage(f"{workspace}/c/s/u0/1", "s", "u0", 1, workspace, {}, NOW - 3600)
    with store.writing() as conn:
        store.insert_messages(conn, ws, "c", [message])
        conn.execute(
            update(outbox)
            .where(outbox.c.workspace_id == ws)
            .values(status="dead", attempts=5, retry_at=REAL, last_error="HTTP 503")
        )
    [row] = store.outbox_rows(ws)
    return ws, int(row["id"])


def test_a_retried_message_is_due_when_retried_with_its_tries_and_error_cleared(
    store, workspace_name
):
    ws, message_id = dead_message(store, workspace_name)
    [was] = store.retry_messages(ws, [message_id], NOW + 60)
    assert (was["status"], was["attempts"], was["last_error"]) == ("dead", 5, "HTTP 503")
    [now] = store.outbox_rows(ws)
    assert (now["status"], now["attempts"], now["last_error"]) == ("pending", 0, None)
    assert store.claim_messages(NOW + 59, REAL, 10, 300.0, channel=workspace_name) == []
    [claimed] = store.claim_messages(NOW + 60, REAL, 10, 300.0, channel=workspace_name)
    assert (claimed.id, claimed.attempts) == (message_id, 1)


@contextmanager
def holding(store: Store, message_id: int) -> Iterator[None]:
    """The message's row locked (PostgreSQL), or the database held for writing (SQLite),
    until the block ends."""
    if store.dialect != "postgresql":
        with store.writing():
            yield
        return
    with store.engine.connect() as conn, conn.begin():
        conn.execute(select(outbox.c.id).where(outbox.c.id == message_id).with_for_update())
        yield


def waiting_on_locks(store: Store) -> int:
    """How many connections wait on a lock in a statement on the outbox (PostgreSQL)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query ILIKE '%outbox%'"
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_two_retries_at_once_put_a_message_back_once(store, workspace_name):
    ws, message_id = dead_message(store, workspace_name)
    outcomes: list[str] = []

    def retry() -> None:
        try:
            store.retry_messages(ws, [message_id], NOW)
            outcomes.append("retried")
        except NotDead as refused:
            outcomes.append(f"refused: {refused.live}")

    with holding(store, message_id):
        both = [threading.Thread(target=retry) for _ in range(2)]
        for thread in both:
            thread.start()
        deadline = time.monotonic() + 30
        while store.dialect == "postgresql" and waiting_on_locks(store) < 2:
            assert time.monotonic() < deadline, "the retries never waited on the held row"
            time.sleep(0.02)  # polling a condition, with a deadline
    for thread in both:
        thread.join(timeout=30)
    assert sorted(outcomes) == [f"refused: {{{message_id}: 'pending'}}", "retried"]
    pending = select(func.count()).where(outbox.c.id == message_id, outbox.c.status == "pending")
    with store.engine.connect() as conn:
        assert conn.execute(pending).scalar_one() == 1
