"""Small builders and probes shared by the campaign semantics tests (tests/e2e/test_*.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from drumbeat.pipeline.planner import DEFAULT_LANE
from drumbeat.store.batch_claims import BATCH_ATTEMPTS
from drumbeat.store.owners import process_owner
from drumbeat.store.schema import outbox
from tests.world import World

FREE = {"attr": "plan", "eq": "free"}
PAID = {"attr": "plan", "eq": "paid"}


def send(step_id: str, channel: str = "email", **extra: Any) -> dict[str, Any]:
    return {
        "send": {"id": step_id, "channel": channel, "subject": step_id, "body": step_id, **extra}
    }


def wait(duration: str, step_id: str | None = None) -> dict[str, Any]:
    return {"wait": {"for": duration, "id": step_id} if step_id else duration}


def campaign(key: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A campaign definition; the audience is `plan == free` unless given."""
    return {"key": key, "name": key, "audience": FREE, "steps": steps, **extra}


def at(iso: str) -> float:
    """Epoch seconds of an ISO-8601 UTC time such as 2026-03-29T07:00."""
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def sent_at(world: World, user_id: str, step_id: str) -> float | None:
    """When the message of `step_id` to `user_id` was created (None: never)."""
    times = [
        r["created_at"]
        for r in world.outbox()
        if r["user_id"] == user_id and r["step_id"] == step_id
    ]
    assert len(times) <= 1, f"{step_id} queued {len(times)} times for {user_id}"
    return times[0] if times else None


def outbox_keys(world: World) -> list[tuple[str, str, str, int, str]]:
    """(campaign, step, user, entry, dedupe key) of every outbox row of the workspace."""
    o = outbox.c
    query = (
        select(o.campaign_key, o.step_id, o.user_id, o.entry_count, o.dedupe_key)
        .where(o.workspace_id == world.ws)
        .order_by(o.id)
    )
    with world.store.engine.connect() as conn:
        return [(c, s, u, int(e), k) for c, s, u, e, k in conn.execute(query)]


def retire(world: World) -> None:
    """Archive every campaign of the world's workspace, so later ticks (of other tests sharing
    the database) do not plan them."""
    for row in world.store.campaigns(world.ws):
        if row.status != "archived":
            world.store.set_campaign_status(world.ws, row.key, "archived", world.now())


def kill_batch(world: World, error: str = "worker process 4242 exited with code -9") -> int:
    """Make the lane's next claimable batch of the world's (other tests' leftovers on a shared
    database are finished as skipped on the way) dead the way a run does
    when every worker process that takes it dies: claimed BATCH_ATTEMPTS times, and each
    time let go of by the parent (`release_batches`) with `error`. Returns its id."""
    holder = process_owner(os.getpid())
    for _ in range(BATCH_ATTEMPTS):
        batch = world.store.claim_batch(DEFAULT_LANE, 300.0, owner=f"{holder}gone")
        while batch is not None and batch.workspace_id != world.ws:  # another test's leftover
            with world.store.writing() as conn:
                world.store.finish_batch(conn, batch, world.now(), 0.0, status="skipped")
            batch = world.store.claim_batch(DEFAULT_LANE, 300.0, owner=f"{holder}gone")
        assert batch is not None
        released = world.store.release_batches(holder, error)
    assert released == {batch.id: "dead"}
    return batch.id
