"""A worker finishes its batch and claims the next in one transaction (one statement on
PostgreSQL): the next is never the batch finished, and nothing is claimed when the batch
was not finished (its fence moved on: another worker holds it)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import update

from drumbeat.store import open_store
from drumbeat.store.schema import batches

NOW = 1_767_571_200.0
LEASE = 300.0


@pytest.fixture
def store(database_url):
    store = open_store(database_url)
    yield store
    store.close()


def lane_of_two(store, workspace_name):
    """Two pending batches on a lane of this test's own (the PostgreSQL database is shared:
    claims take any workspace's batches of their lane); the first claimed."""
    ws = store.workspace_id(workspace_name)
    with store.writing() as conn:
        store.create_batches(conn, ws, "c", workspace_name, "enter", [["u1"], ["u2"]], NOW, NOW)
    return ws, store.claim_batch(workspace_name, LEASE)


def statuses(store, ws):
    return [row["status"] for row in store.batch_rows(ws)]


def finish(store, batch, lane):
    with store.writing() as conn:
        return store.finish_batch(conn, batch, NOW, 0.1, lane=lane, lease=LEASE)


def test_finishing_a_batch_claims_the_next_one_not_itself(store, workspace_name):
    ws, first = lane_of_two(store, workspace_name)
    done, following = finish(store, first, workspace_name)
    assert done and following.user_ids == ["u2"] and following.id != first.id
    assert statuses(store, ws) == ["done", "running"]
    assert finish(store, following, workspace_name) == (True, None)  # the lane is empty
    assert statuses(store, ws) == ["done", "done"]


def test_a_batch_held_by_another_worker_is_not_finished_and_nothing_is_claimed(
    store, workspace_name
):
    ws, first = lane_of_two(store, workspace_name)
    stale = replace(first, fence=first.fence - 1)  # as another claim left it
    assert finish(store, stale, workspace_name) == (False, None)  # even were it committed
    assert statuses(store, ws) == ["running", "pending"]
    assert finish(store, first, None) == (True, None)  # no lane: no claim
    assert statuses(store, ws) == ["done", "pending"]


def test_a_claim_lost_in_a_crash_leaves_its_holder_nothing_to_finish(store, workspace_name):
    """A claim by id commits without waiting for the disk on PostgreSQL (and SQLite's
    commits never wait), so a crash may lose it after its holder got it; the next claim
    then hands out the same fence number again. The finish checks the owner too: the first
    holder, stale, commits nothing; the second finishes."""
    lane_of_two(store, workspace_name)
    [pending] = store.claimable_batch_ids(workspace_name, 10)
    lost = store.claim_batch_id(pending, LEASE, owner="host-a:1:1")
    with store.writing() as conn:  # the crash: the row as it was before that claim
        conn.execute(
            update(batches)
            .where(batches.c.id == pending)
            .values(status="pending", owner=None, lease_until=None, fence=lost.fence - 1)
        )
    held = store.claim_batch_id(pending, LEASE, owner="host-b:2:1")
    assert held.fence == lost.fence
    assert finish(store, lost, None) == (False, None)
    assert finish(store, held, None) == (True, None)
