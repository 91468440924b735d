"""A `drumbeat advance` killed in the middle of a tick, then the same command again: the tick
left open is finished at its own time (not one step later, and not skipped when it was the
last), and every message the campaign calls for exists and is sent, once (but those being
sent at the kill, which may go twice)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from drumbeat.model.attributes import format_timestamp
from drumbeat.pipeline.clock import CLOCK_SETTING, CLOCK_WORKSPACE
from drumbeat.store import Store, open_store
from drumbeat.store.schema import outbox
from tests.e2e.helpers import send, wait
from tests.e2e.running import (
    delivered,
    environment,
    outbox_rows,
    own_store,
    prepare,
    start,
    wait_for,
)
from tests.world import DAY, HOUR, MONDAY

USERS = 900
BATCH = 20  # users per batch: a tick's work is many batches, so a kill lands among them
EVERY = 6 * HOUR
TO = MONDAY + DAY + 6 * HOUR  # ticks at 6h (entry, "one"), 12h, 18h, 24h, 30h ("two", last)
FIRST, LAST = MONDAY + EVERY, TO


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    with own_store(database_url) as own:
        yield own


def step_rows(store: Store, step: str) -> int:
    query = select(func.count()).select_from(outbox).where(outbox.c.step_id == step)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def kill_in_tick(store: Store, process, at: float, step: str) -> set[str]:  # type: ignore[no-untyped-def]
    """SIGKILL `process` (and its group) while its tick at `at` works the batches that queue
    `step`: once some of them are done, with the store's writes held still. Returns the
    messages being sent at the kill (on PostgreSQL a tick sends as its batches commit,
    `Dispatcher.sending_meanwhile`): sending is at least once, and one sent but not yet
    recorded is sent again."""
    wait_for(
        lambda: (
            store.get_setting(CLOCK_WORKSPACE, CLOCK_SETTING) == at and step_rows(store, step) > 0
        ),
        f"the tick at {format_timestamp(at)} to work",
        process,
    )
    with store.writing() as conn:  # SQLite: the write lock; PostgreSQL: the two tables
        if store.dialect == "postgresql":  # in the order a batch's commit writes them
            conn.exec_driver_sql("LOCK TABLE outbox, batches IN EXCLUSIVE MODE")
        o = outbox.c
        queued = conn.execute(select(func.count()).where(o.step_id == step)).scalar_one()
        sending = conn.execute(select(o.dedupe_key).where(o.status == "sending")).scalars()
        assert 0 < queued < USERS, f"killed too late ({queued} {step}): raise USERS"
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        return set(sending)


@pytest.mark.parametrize("killed_at", [FIRST, LAST], ids=["first tick", "last tick"])
def test_a_killed_advance_finishes_its_tick_when_run_again(
    url: str, tmp_path: Path, killed_at: float
) -> None:
    prepare(url, [send("one"), wait("1d"), send("two")], USERS, at=MONDAY)
    messages, log = tmp_path / "messages.jsonl", tmp_path / "advance.log"
    env = environment(url, messages, batch_size=str(BATCH))
    command = ["advance", "--to", format_timestamp(TO), "--every", "6h"]
    store = open_store(url, migrate=False)
    try:
        in_flight = kill_in_tick(
            store, start(command, env, log), killed_at, "one" if killed_at == FIRST else "two"
        )
    finally:
        store.close()

    again = start(command, env, log)
    assert again.wait(timeout=90) == 0, log.read_text()

    rows = outbox_rows(url)
    one = {r["user_id"]: r for r in rows if r["step_id"] == "one"}
    two = {r["user_id"]: r for r in rows if r["step_id"] == "two"}
    assert len(one) == USERS and {r["status"] for r in rows} == {"sent"}
    # every user entered at the first tick, but those of the batch held at a kill there
    late = [u for u, r in one.items() if r["created_at"] != FIRST]
    assert len(late) <= BATCH and all(one[u]["created_at"] == FIRST + EVERY for u in late)
    # "two" a day after "one" when that is by the end, queued and sent at its own tick
    assert set(two) == {u for u, r in one.items() if r["created_at"] + DAY <= TO}
    assert all(r["created_at"] == one[u]["created_at"] + DAY for u, r in two.items())
    assert all(r["sent_at"] == r["created_at"] for r in rows)
    sent = Counter(m["message_id"] for m in delivered(messages))
    assert sorted(sent) == sorted(r["dedupe_key"] for r in rows)
    assert {key for key, n in sent.items() if n > 1} <= in_flight  # the others once
