"""A claim of outbox rows on both stores, as claimers see it: each row to one claimer at a
time (PostgreSQL: rows another claim holds are passed over, not waited for), the fence moved
on, and each row with its recipient as the claim read them."""

from __future__ import annotations

import threading

import pytest

from drumbeat.engine.member import OutMessage
from drumbeat.model.records import UserRecord
from drumbeat.store import open_store
from drumbeat.store.sends import SendResult
from tests.conftest import settle_leftovers

NOW = 1_767_571_200.0  # the store's clock (virtual)
REAL = 1_000_000.0  # the real clock, as a test gives it


@pytest.fixture
def store(database_url):
    store = open_store(database_url, batch_size=2)  # small: the bulk calls go in parts
    yield store
    store.close()


def queue(store, workspace_name, users):
    """One message for each of `users`, due in that order, on a channel of this test's own
    (the PostgreSQL database is shared: claims take any channel's rows unless told one)."""
    ws = store.workspace_id(workspace_name)
    messages = [
        OutMessage(f"{workspace_name}/c/s/{u}/1", "s", u, 1, workspace_name, {}, NOW - 1000 + n)
        for n, u in enumerate(users)
    ]
    with store.writing() as conn:
        store.insert_messages(conn, ws, "c", messages)
    return ws


def claim(store, channel, limit=10, real=REAL):
    return store.claim_messages(NOW, real, limit, 5.0, channel)


def test_each_claimed_row_comes_with_its_recipient_as_the_claim_read_them(store, workspace_name):
    ws = queue(store, workspace_name, ["ada", "gone", "bob"])
    store.write_users(
        ws,
        [
            UserRecord("ada", {"email": "ada@example.com"}, {"plan": "pro"}),
            UserRecord("bob", {"email": "bob@example.com", "unsubscribed": True}, {}),
        ],
        NOW,
    )
    rows = claim(store, workspace_name)
    assert [row.user_id for row in rows] == ["ada", "gone", "bob"]  # in id order
    ada, gone, bob = (row.user for row in rows)
    assert gone is None  # no such user: the dispatcher fails the message as suppressed
    assert (ada.email, ada.attributes, ada.unsubscribed) == (
        "ada@example.com",
        {"plan": "pro"},
        False,
    )
    assert (bob.email, bob.unsubscribed) == ("bob@example.com", True)
    assert ada == store.load_users(ws, ["ada"])["ada"]  # the same user a load reads


def test_a_claim_takes_the_oldest_due_first_and_moves_each_fence_on(store, workspace_name):
    queue(store, workspace_name, [f"u{n}" for n in range(5)])
    first, second = claim(store, workspace_name, 2), claim(store, workspace_name, 2)
    assert [r.user_id for r in first + second] == ["u0", "u1", "u2", "u3"]
    assert {(r.fence, r.attempts) for r in first + second} == {(1, 1)}
    again = claim(store, workspace_name, 10, REAL + 6)  # the leases ran out: taken up first
    assert [r.user_id for r in again] == ["u0", "u1", "u2", "u3", "u4"]
    assert [r.fence for r in again] == [2, 2, 2, 2, 1]
    stale = [SendResult(r.id, r.fence, "sent") for r in first]
    assert store.record_results(stale, NOW) == 2  # the first claim holds nothing now


def test_two_claimers_at_once_never_share_a_row(store, workspace_name):
    users = [f"u{n:03}" for n in range(120)]
    queue(store, workspace_name, users)
    taken: list[list[str]] = [[], []]

    def claimer(mine: list[str]) -> None:
        while rows := claim(store, workspace_name, 7):
            mine += [row.user_id for row in rows]

    threads = [threading.Thread(target=claimer, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(taken[0] + taken[1]) == users  # every row once, none twice


def test_a_claim_passes_over_rows_another_claim_holds_without_waiting(pg_database, workspace_name):
    """PostgreSQL (SQLite has one writer: a claim never meets another's open transaction):
    a claim whose transaction is still open holds its rows; another claim takes the next
    ones at once (SKIP LOCKED), and the held ones once the first rolls back."""
    store = open_store(pg_database)
    ws = queue(store, workspace_name, ["u0", "u1", "u2"])
    taken: list[str] = []
    other = threading.Thread(
        target=lambda: taken.extend(r.user_id for r in claim(store, workspace_name))
    )
    with store.engine.connect() as holder:
        held = holder.execute(store.claim_statement(NOW, REAL, 1, 5.0, workspace_name)).all()
        assert [row.user_id for row in held] == ["u0"]
        other.start()
        other.join(timeout=10)  # a claim that waited for the holder would still be running
        finished = not other.is_alive()
        holder.rollback()
    other.join()
    assert finished and taken == ["u1", "u2"]
    assert [row.user_id for row in claim(store, workspace_name)] == ["u0"]
    settle_leftovers(store, ws)  # the database is shared: no later dispatch takes them up
    store.close()
