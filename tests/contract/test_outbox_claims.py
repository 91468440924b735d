"""Outbox claims on both stores: leases and retries count real time, whatever the store's
(virtual) clock says, and a claim records results only for the rows it still holds."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from drumbeat.engine.member import OutMessage
from drumbeat.store import open_store
from drumbeat.store.outbox import SendResult

NOW = 1_767_571_200.0  # the store's clock (virtual)
REAL = 1_000_000.0  # the real clock, as a test gives it
YEAR = 365 * 86400.0


@pytest.fixture
def store(database_url):
    store = open_store(database_url, batch_size=2)  # small: the bulk calls go in parts
    yield store
    store.close()


@pytest.fixture
def channel(store, workspace_name):
    """Three rows due at NOW on a channel of this test's own (the PostgreSQL database is
    shared: claims take any channel's rows unless told one)."""
    ws = store.workspace_id(workspace_name)
    messages = [
        OutMessage(f"{workspace_name}/c/s/u{n}/1", "s", f"u{n}", 1, workspace_name, {}, NOW)
        for n in range(3)
    ]
    with store.writing() as conn:
        store.insert_messages(conn, ws, "c", messages)
    return workspace_name


def claim(store, channel, real, now=NOW, lease=5.0):
    return store.claim_messages(now, real, 10, lease, channel)


def statuses(store, workspace_name):
    ws = store.workspace_id(workspace_name)
    return sorted((r["user_id"], r["status"]) for r in store.outbox_rows(ws))


def test_a_lease_counts_real_time_not_the_store_clock(store, channel):
    first = claim(store, channel, REAL)
    assert len(first) == 3 and {row.fence for row in first} == {1}
    # a second process whose virtual clock is a year on still sees the lease held
    assert claim(store, channel, REAL + 4, now=NOW + YEAR) == []
    again = claim(store, channel, REAL + 6)  # the lease ran out in real time
    assert [row.id for row in again] == [row.id for row in first]
    assert {row.fence for row in again} == {2} and {row.attempts for row in again} == {2}


def test_a_stale_claim_cannot_record_its_results(store, channel, workspace_name):
    stale = claim(store, channel, REAL)
    taken = claim(store, channel, REAL + 6)
    sent = [SendResult(row.id, row.fence, "sent") for row in stale]
    assert store.record_results(sent, NOW) == 3  # all three dropped: another claim has them
    assert statuses(store, workspace_name) == [(f"u{n}", "sending") for n in range(3)]
    assert store.record_results([SendResult(r.id, r.fence, "sent") for r in taken], NOW) == 0
    assert statuses(store, workspace_name) == [(f"u{n}", "sent") for n in range(3)]
    assert store.record_results(sent, NOW) == 3  # and never over a finished row


def test_an_extended_lease_keeps_the_rows_and_a_lost_one_says_so(store, channel):
    rows = claim(store, channel, REAL)
    claims = [(row.id, row.fence) for row in rows]
    assert store.extend_leases(claims, REAL + 4 + 5) == {row.id for row in rows}
    assert claim(store, channel, REAL + 6) == []  # past the first lease, inside the new one
    taken = claim(store, channel, REAL + 10)
    assert len(taken) == 3
    assert store.extend_leases(claims, REAL + 20) == set()


def test_a_retry_waits_in_real_time_whatever_the_store_clock_says(store, channel):
    rows = claim(store, channel, REAL)
    retry = [SendResult(r.id, r.fence, "pending", retry_at=REAL + 10 + r.id) for r in rows]
    assert store.record_results(retry, NOW) == 0
    first = min(r.id for r in rows)
    assert store.next_retry(NOW) <= REAL + 10 + first  # other tests' rows may come first
    assert claim(store, channel, REAL + 5, now=NOW + YEAR) == []
    [due] = claim(store, channel, REAL + 10 + first)
    assert due.id == first and due.attempts == 2


def test_rows_a_gone_process_was_sending_are_taken_up_at_once(
    store, channel, database_url, workspace_name
):
    """A run killed while sending leaves its rows `sending` under a lease of real minutes;
    the next run lets go of them at once, knowing their process gone (not a live one's)."""
    script = (
        "import sys, time\n"
        "from drumbeat.store import open_store\n"
        "store = open_store(sys.argv[1], migrate=False)\n"
        "print(len(store.claim_messages(float(sys.argv[2]), time.time(), 2, 300.0, sys.argv[3])))\n"
    )
    gone = subprocess.run(
        [sys.executable, "-c", script, database_url, str(NOW), channel],
        capture_output=True,
        text=True,
        check=True,
    )
    assert gone.stdout.strip() == "2"  # its process has exited: gone, its lease still held
    alive = claim(store, channel, time.time(), lease=300.0)  # this process: alive
    assert len(alive) == 1
    assert claim(store, channel, time.time()) == []  # every lease held
    assert store.release_orphaned_messages() == 2  # the gone process's, not this one's
    taken = claim(store, channel, time.time())
    assert sorted(row.user_id for row in taken) == ["u0", "u1"]
    assert store.release_orphaned_messages() == 0
