"""Dead batches through the Python API (`Drumbeat.batches`, `Drumbeat.retry_batches`), on
SQLite and PostgreSQL: listed with their error, put back and run by the next tick, refused
whole when an id is not a dead batch of the workspace, kept to their workspace, and their
users left out of planning until an operator retries them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from drumbeat.errors import InvalidInput
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_campaign
from drumbeat.store.batch_claims import BATCH_ATTEMPTS
from drumbeat.store.owners import process_owner
from drumbeat.views import Batch
from tests.e2e.helpers import campaign, kill_batch, retire, send, wait
from tests.world import DAY, HOUR, World

USERS = 30
BATCH = 10
DRIP = campaign("drip", [send("one"), wait("1d"), send("two")])
EVERYONE = [f"u{i:03d}" for i in range(USERS)]
FIRST = EVERYONE[:BATCH]  # the users of the first batch planned, the one made dead
ERROR = "worker process 4242 exited with code -9"


def populate(world: World) -> World:
    world.store.batch_size = BATCH
    world.db.identify_many([{"user_id": u, "traits": {"plan": "free"}} for u in EVERYONE])
    world.apply(DRIP)
    return world


@pytest.fixture
def world(world: World) -> World:
    """Three entry batches planned; the first dead (every worker died on it), the others done."""
    populate(world)
    drain(world)  # what other tests' workspaces left in the lane (one PostgreSQL database)
    return with_dead_batch(world)


def with_dead_batch(world: World, error: str = ERROR) -> World:
    """The world's campaign planned alone (a tick plans every workspace's), its first batch
    made dead, the others run."""
    world.runner.programs.refresh()
    [row] = world.store.campaigns(world.ws)
    plan_campaign(world.store, world.runner.programs, row, world.now(), full_pass_every=DAY)
    kill_batch(world, error)
    drain(world)
    return world


def drain(world: World) -> None:
    world.runner.executor.drain(DEFAULT_LANE, world.now())


def sent(world: World) -> Counter[tuple[str, str]]:
    return Counter((r["step_id"], r["user_id"]) for r in world.outbox())


def test_dead_batches_are_listed_with_their_error(world):
    [dead] = world.db.batches(status="dead")
    assert dead == Batch(dead.id, "drip", "fast", "enter", FIRST, "dead", 3, world.now(), ERROR)
    listed = world.db.batches()
    assert [(b.status, b.user_ids) for b in listed] == [
        ("dead", FIRST),
        ("done", EVERYONE[BATCH : 2 * BATCH]),
        ("done", EVERYONE[2 * BATCH :]),
    ]
    assert world.db.batches(campaign="drip", limit=2) == listed[:2]
    assert world.db.batches(status="pending") == []
    with pytest.raises(InvalidInput, match="status 'gone': use one of pending, running, done"):
        world.db.batches(status="gone")
    with pytest.raises(InvalidInput, match="no campaign 'nope'"):
        world.db.batches(campaign="nope")


@pytest.mark.parametrize("by", ["ids", "all_dead"])
def test_retried_batches_run_on_the_next_tick(world, by):
    [dead] = world.db.batches(status="dead")
    named = {"ids": [dead.id]} if by == "ids" else {"all_dead": True}
    assert world.db.retry_batches(**named, dry_run=True) == [dead]
    assert world.db.batches(status="dead") == [dead]  # a dry run changes nothing
    assert world.db.retry_batches(**named) == [dead]  # as it was
    [back] = [b for b in world.db.batches() if b.id == dead.id]
    assert (back.status, back.attempts, back.error) == ("pending", 0, ERROR)  # until it runs
    world.advance(HOUR)
    [done] = [b for b in world.db.batches() if b.id == dead.id]
    assert (done.status, done.attempts) == ("done", 1)
    assert sent(world) == Counter({("one", u): 1 for u in EVERYONE})
    assert world.db.retry_batches(all_dead=True) == []


def test_an_unknown_id_or_a_live_batch_is_refused_and_nothing_changes(world):
    dead, done, _ = world.db.batches()
    with pytest.raises(InvalidInput) as refused:
        world.db.retry_batches([dead.id, done.id, 999999])
    assert str(refused.value) == (
        f"invalid batches to retry: batch {done.id} is done, not dead; batch 999999: not in"
        f" workspace {world.config.workspace!r}; nothing was retried"
    )
    for wrong in ({}, {"ids": []}, {"ids": [dead.id], "all_dead": True}):
        with pytest.raises(InvalidInput, match="by id, or all dead ones, not both"):
            world.db.retry_batches(**wrong)
    assert world.db.batches(status="dead") == [dead]


def test_another_workspaces_dead_batch_is_neither_listed_nor_retried(world, tmp_path):
    other = World(world.config.database_url, f"{world.config.workspace}-other", tmp_path)
    try:
        with_dead_batch(populate(other))
        [theirs] = other.db.batches(status="dead")
        [ours] = world.db.batches(status="dead")
        assert theirs.id not in {b.id for b in world.db.batches()}
        assert world.store.batch_counts(world.ws)["dead"] == 1  # `drumbeat stats`: ours
        with pytest.raises(InvalidInput, match=f"batch {theirs.id}: not in workspace"):
            world.db.retry_batches([theirs.id])
        assert world.db.retry_batches(all_dead=True) == [ours]
        assert other.db.batches(status="dead") == [theirs]
    finally:
        retire(other)
        other.close()


def test_a_dead_batchs_users_are_not_planned_again_until_it_is_retried(world):
    [dead] = world.db.batches(status="dead")
    # changed since: each tick's entry looks at them again
    world.db.identify_many([{"user_id": u, "traits": {"visits": 2}} for u in FIRST])
    world.advance(2 * HOUR, every=HOUR)
    assert world.db.batches(status="dead") == [dead]
    assert [b.id for b in world.db.batches() if set(b.user_ids) & set(FIRST)] == [dead.id]
    assert not any(u in FIRST for _, u in sent(world))
    world.db.retry_batches([dead.id])
    world.advance(HOUR)
    assert sent(world) == Counter({("one", u): 1 for u in EVERYONE})
    assert [b.id for b in world.db.batches() if set(b.user_ids) & set(FIRST)] == [dead.id]


def test_a_batch_of_runs_killed_whole_is_given_back_not_made_dead(world):
    """A run killed from outside (its process gone with it) says nothing of the batch it
    held: the next run takes it up without counting the claim, however often that happens."""
    world.runner.programs.refresh()
    [row] = [r for r in world.store.campaigns(world.ws) if r.status == "active"]
    plan_campaign(world.store, world.runner.programs, row, world.now() + DAY, full_pass_every=DAY)
    held: set[int] = set()
    for _ in range(BATCH_ATTEMPTS + 1):
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()  # a process that has ended: its pid is gone
        batch = world.store.claim_batch(DEFAULT_LANE, 300.0, owner=f"{process_owner(ended.pid)}x")
        assert batch is not None and batch.workspace_id == world.ws
        held.add(batch.id)
        assert world.store.release_orphaned_batches() == {batch.id: "pending"}
    assert len(held) == 1
    assert [b.status for b in world.db.batches() if b.id in held] == ["pending"]


def test_a_batch_of_a_killed_worker_not_reaped_yet_is_given_back(world):
    """A worker killed with its run is reparented to init, which may take a second or more
    to reap it (a container's does): a second is many ticks of `advance`. Ended, it holds
    nothing, reaped or not; alive, its batch stays its own."""
    world.runner.programs.refresh()
    [row] = [r for r in world.store.campaigns(world.ws) if r.status == "active"]
    plan_campaign(world.store, world.runner.programs, row, world.now() + DAY, full_pass_every=DAY)
    with subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE) as worker:
        try:
            owner = f"{process_owner(worker.pid)}x"
            batch = world.store.claim_batch(DEFAULT_LANE, 300.0, owner=owner)
            assert batch is not None and batch.workspace_id == world.ws
            assert world.store.release_orphaned_batches() == {}  # alive: its lease holds
            worker.kill()
            os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped
            assert world.store.release_orphaned_batches() == {batch.id: "pending"}
        finally:
            worker.kill()  # reaped on leaving the block
