"""Statements per 1,000 users on the batch path: the engine's first tick for N users who
all match a campaign (plan, then the batches: entry and the first message queued), then the
dispatch of those messages to the file channel (claims, sends, results recorded), each
counted as the statements the store's engine sends (`bench.statements`). On PostgreSQL each
is a round trip; the target is ≤ 10 per 1,000 users, dispatch included."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from sqlalchemy import delete

from drumbeat.bench.engine import CAMPAIGN, START, load_users
from drumbeat.bench.report import Figure
from drumbeat.bench.statements import counted
from drumbeat.campaigns import apply, plan_apply
from drumbeat.channels.dispatcher import Dispatcher
from drumbeat.config import Settings
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.executors import make_executor
from drumbeat.pipeline.planner import DEFAULT_LANE, plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.store import Store, open_store
from drumbeat.store.schema import batches, campaigns, events, memberships, outbox, users


def run(url: str, users: int, config: Settings) -> list[Figure]:
    store = open_store(url, batch_size=config.batch_size)
    backend = store.dialect
    ws = store.workspace_id(f"bench-{uuid.uuid4().hex[:8]}", now=START)
    programs = Programs(store)
    executor = make_executor(store, programs, 1)
    try:
        with tempfile.TemporaryDirectory() as folder:
            sink = config.model_copy(update={"outbox_file": str(Path(folder) / "sent.jsonl")})
            dispatcher = Dispatcher(store, sink)
            load_users(store, ws, users)
            apply(plan_apply(parse_campaign(CAMPAIGN), store, ws), store, ws, START, activate=True)
            with counted(store.engine) as engine:
                plan_all(store, programs, START, full_pass_every=86400.0)
                executor.drain(DEFAULT_LANE, START)
            with counted(store.engine) as sending:
                sent = dispatcher.dispatch(START).counts.get("sent", 0)
            dispatcher.close()
        if sent != users:
            raise AssertionError(f"the dispatch sent {sent:,} messages for {users:,} users")
    finally:
        executor.close()
        remove(store, ws)
        store.close()
    what = f"{backend}: statements per 1,000 users"
    per = 1000 / users
    total = (engine.count + sending.count) * per
    return [
        Figure(f"{what}, engine (plan + batches)", engine.count * per, "statements"),
        Figure(f"{what}, dispatch (claims, sends, results)", sending.count * per, "statements"),
        Figure(f"{what}, the batch path", total, "statements", None, "≤ 10 on PostgreSQL"),
    ]


def remove(store: Store, ws: int) -> None:
    """The run's rows deleted: its campaign first, so that no later tick plans it."""
    with store.writing() as conn:
        for table in (campaigns, batches, outbox, memberships, events, users):
            conn.execute(delete(table).where(table.c.workspace_id == ws))
