"""The batches as the distributed shape uses them (`store/batch_queue.py`), on SQLite and
PostgreSQL: a worker claims the batch its message names, once; a message whose batch is
finished or held claims nothing; a stale worker (its lease ran out, another worker took the
batch by id) commits nothing; what a batch did is read back from the store."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress

import psycopg
import pytest
from sqlalchemy import select

from drumbeat.config import BROKER_HEARTBEAT
from drumbeat.pipeline.executors.celery import CeleryExecutor
from drumbeat.pipeline.executors.celery_app import DISPATCH_LANE, queue_name, queues
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.worker import BATCH_LEASE, BatchReport, LeaseLost, process_batch
from drumbeat.store import Store
from drumbeat.store.batch_claims import BATCH_ATTEMPTS
from drumbeat.store.owners import claim_owner
from drumbeat.store.schema import batches
from tests.e2e.helpers import campaign, send, wait
from tests.world import DAY, World

DRIP = campaign("drip", [send("one"), wait("1d"), send("two")])
USERS = 30


def planned(world: World) -> list[int]:
    """USERS users in DRIP, planned in batches of 10: this workspace's batch ids."""
    world.store.batch_size = 10
    world.db.identify_many({"user_id": f"u{i}", "traits": {"plan": "free"}} for i in range(USERS))
    world.apply(DRIP)
    plan_all(world.store, world.runner.programs, world.now(), full_pass_every=7 * DAY)
    with world.store.engine.connect() as conn:
        query = select(batches.c.id).where(batches.c.workspace_id == world.ws)
        return sorted(conn.execute(query.order_by(batches.c.id)).scalars())


def later(store: Store, seconds: float) -> None:
    """Real time passes for the store's leases (the virtual clock stays)."""
    earlier = store.real_clock
    store.real_clock = lambda: earlier() + seconds


def test_a_message_claims_its_batch_once_and_its_report_is_read_back(world: World) -> None:
    ids = planned(world)
    store = world.store
    assert len(ids) == 3 and set(ids) <= set(store.claimable_batch_ids(DEFAULT_LANE, 10_000))
    batch = store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner())
    assert batch is not None and batch.id == ids[0] and batch.fence == 1
    assert store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner()) is None  # held
    assert ids[0] not in store.claimable_batch_ids(DEFAULT_LANE, 10_000)
    report, _ = process_batch(store, world.runner.programs, batch, batch.due_at)
    assert store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner()) is None  # done
    assert [BatchReport(**row) for row in store.batch_reports(ids)] == [report]
    assert report == BatchReport(ids[0], users=10, changed=10, entered=10, messages=10)


def test_a_stale_worker_commits_nothing(world: World) -> None:
    ids = planned(world)
    store, programs = world.store, world.runner.programs
    stale = store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner())
    assert stale is not None
    later(store, BATCH_LEASE + 1)  # the first worker stalls past its lease
    assert ids[0] in store.claimable_batch_ids(DEFAULT_LANE, 10_000)  # published again
    fresh = store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner())
    assert fresh is not None and fresh.fence == stale.fence + 1
    process_batch(store, programs, fresh, fresh.due_at)
    with pytest.raises(LeaseLost):  # the engine ran; the commit is refused
        process_batch(store, programs, stale, stale.due_at)
    rows = world.outbox()
    assert Counter(r["user_id"] for r in rows) == {u: 1 for u in fresh.user_ids}
    assert store.batch_reports([ids[0]])[0]["entered"] == 10  # the fresh worker's report


def test_a_batch_claimed_by_many_workers_at_once_goes_to_one(world: World) -> None:
    """Its message delivered to several workers at once: one claims the batch. A claim is
    one statement that commits on its own: when it returns, another connection sees it,
    and on SQLite the write lock is free at once."""
    ids = planned(world)
    store = world.store
    owners = [f"{claim_owner()}-{i}" for i in range(4)]
    with ThreadPoolExecutor(len(owners)) as pool:
        claims = list(
            pool.map(lambda o: store.claim_batch_id(ids[0], BATCH_LEASE, owner=o), owners)
        )
    won = [(owner, batch) for owner, batch in zip(owners, claims, strict=True) if batch]
    assert len(won) == 1 and won[0][1].fence == 1 and won[0][1].attempts == 1
    with store.engine.connect() as conn:
        row = conn.execute(
            select(batches.c.status, batches.c.owner).where(batches.c.id == ids[0])
        ).one()
    assert tuple(row) == ("running", won[0][0])
    if store.dialect == "sqlite":
        with closing(sqlite3.connect(store.engine.url.database, timeout=0)) as other:
            other.execute("BEGIN IMMEDIATE")  # no writer holds the lock
            other.rollback()


def test_a_batch_whose_workers_keep_dying_ends_dead(world: World) -> None:
    ids = planned(world)
    store = world.store
    for _ in range(BATCH_ATTEMPTS):  # each holder dies: its lease runs out
        assert store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner()) is not None
        later(store, BATCH_LEASE + 1)
    assert store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner()) is None
    with store.engine.connect() as conn:
        status = conn.execute(select(batches.c.status).where(batches.c.id == ids[0])).scalar()
    assert status == "dead"
    assert ids[0] not in store.claimable_batch_ids(DEFAULT_LANE, 10_000)


def test_the_scheduler_publishes_a_batch_again_only_when_it_may_be_lost(
    world: World, broker_url: str
) -> None:
    """Published once; not again within `republish_after` (whatever other lanes publish);
    again at once when its lease ran out (its worker died)."""
    ids = planned(world)
    store = world.store
    publisher = CeleryExecutor(
        store, broker_url, republish_after=3600.0, heartbeat=BROKER_HEARTBEAT
    )
    try:
        assert set(ids) <= set(publisher.publish(DEFAULT_LANE))
        assert publisher.publish("slow") == []
        assert publisher.publish(DEFAULT_LANE) == []  # waiting in the queue
        held = store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner())
        assert held is not None and publisher.publish(DEFAULT_LANE) == []
        later(store, BATCH_LEASE + 1)  # its worker died
        assert publisher.publish(DEFAULT_LANE) == [ids[0]]
        assert publisher.waiting(DEFAULT_LANE) == len(ids) + 1
    finally:
        publisher.close()


def test_the_scheduler_gives_every_idle_dispatch_worker_a_message(
    world: World, broker_url: str
) -> None:
    """With no dispatch worker, one message waits (and no more however many ticks pass);
    with three idle ones, each gets a message at the same tick; while all three are busy,
    one waits for each, and no more."""
    from kombu import Consumer

    publisher = CeleryExecutor(
        world.store, broker_url, republish_after=3600.0, heartbeat=BROKER_HEARTBEAT
    )
    try:
        publisher.publish_dispatch()
        publisher.publish_dispatch()
        assert publisher.waiting(DISPATCH_LANE) == 1
        queue = next(q for q in queues() if q.name == queue_name(DISPATCH_LANE))
        with publisher.app.connection_for_write() as conn:
            queue.bind(conn.default_channel).purge()
            taken: list[object] = []
            for _ in range(3):  # a worker each, holding one message at a time (prefetch 1)
                channel = conn.channel()
                channel.basic_qos(0, 1, False)
                Consumer(channel, [queue], callbacks=[lambda _, m: taken.append(m)]).consume()
            assert publisher.consumers(DISPATCH_LANE) == 3
            publisher.publish_dispatch()
            deadline = time.monotonic() + 30
            while len(taken) < 3 and time.monotonic() < deadline:
                with suppress(TimeoutError, socket.timeout):
                    conn.drain_events(timeout=1)
            assert len(taken) == 3 and publisher.waiting(DISPATCH_LANE) == 0
            publisher.publish_dispatch()  # all three busy
            publisher.publish_dispatch()
            assert publisher.waiting(DISPATCH_LANE) == 3
    finally:
        publisher.close()


def test_a_closed_publisher_leaves_no_connection_to_the_broker(
    world: World, broker_url: str
) -> None:
    """Publishing keeps one connection, from one round to the next, and closing the
    executor closes it: a scheduler's executor leaves no socket behind (warnings are
    errors, but a socket kept in a process-wide pool is only collected, and warned of,
    after the session ends)."""
    before = broker_sockets()
    publisher = CeleryExecutor(
        world.store, broker_url, republish_after=3600.0, heartbeat=BROKER_HEARTBEAT
    )
    publisher.publish(DEFAULT_LANE)
    publisher.publish_dispatch()
    assert broker_sockets() == before + 1
    publisher.close()
    assert broker_sockets() == before


def broker_sockets() -> int:
    """This process's established TCP connections to RabbitMQ's port (Linux's /proc)."""
    ours: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        with suppress(FileNotFoundError):  # the listing's own descriptor, closed since
            ours.add(os.readlink(f"/proc/self/fd/{fd}"))
    with open("/proc/self/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(
        1
        for row in rows
        if row[2].endswith(":1628") and row[3] == "01" and f"socket:[{row[9]}]" in ours
    )


def test_a_claim_whose_connection_died_idle_is_made_on_a_new_one_at_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL's claims go through connections of their own, not pinged when taken
    (`store/unflushed.py`): one whose backend was terminated while it sat idle is replaced
    by the claim itself, as the pre-ping would have, not by `retrying` (its backoff and its
    warning)."""
    if world.store.dialect != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    ids = planned(world)
    store = world.store
    assert store.claim_batch_id(ids[0], BATCH_LEASE, owner=claim_owner()) is not None
    with closing(store._unflushed.engine.raw_connection()) as pooled:  # the claim's, idle
        backend = pooled.driver_connection.info.backend_pid
    with psycopg.connect(world.config.database_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [backend]).fetchone()
    with caplog.at_level(logging.WARNING):
        claimed = store.claim_batch_id(ids[1], BATCH_LEASE, owner=claim_owner())
    assert claimed is not None and claimed.id == ids[1] and claimed.fence == 1
    assert "connection lost" not in caplog.text
