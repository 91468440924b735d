"""The worker's unit of work: one batch. Load in bulk (users, memberships, event facts,
recent sends: one query per kind), run the engine, and write memberships, outbox rows and
the batch's completion in one transaction guarded by the batch's fence."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection

from drumbeat import metrics
from drumbeat.engine import Subject, decide
from drumbeat.pipeline.programs import Programs
from drumbeat.store import Store
from drumbeat.store.outbox import Batch

BATCH_LEASE = 300.0  # seconds a worker may hold a batch before another may take it


class LeaseLost(Exception):
    """Another worker claimed this batch after our lease ran out; our work was rolled back."""


@dataclass
class BatchReport:
    batch_id: int
    users: int = 0
    changed: int = 0
    entered: int = 0
    messages: int = 0


def process_batch(
    store: Store, programs: Programs, batch: Batch, now: float, *, claim_from: str | None = None
) -> tuple[BatchReport, Batch | None]:
    """Run a batch; with `claim_from`, also claim that lane's next batch in the transaction
    that finishes this one (see `Store.claim_batch`). Returns the report and that batch."""
    started = time.perf_counter()
    report = BatchReport(batch.id, len(batch.user_ids))
    ws, key, ids = batch.workspace_id, batch.campaign_key, batch.user_ids
    program = programs.get(ws, key)
    if program is None:  # paused or archived since it was planned
        with store.writing() as conn:
            store.finish_batch(conn, batch, now, 0.0, status="skipped")
            return report, _claim_next(store, conn, claim_from, now)
    with metrics.timed("stage.batch", len(ids)):
        users = store.load_users(ws, ids)
        members = store.load_members(ws, key, ids)
        facts = (
            store.event_counts(ws, ids, program.event_conditions, now)
            if program.event_conditions
            else {}
        )
        sends = store.recent_sends(ws, ids, now - program.cap.per) if program.cap else {}
        subjects = [
            Subject(
                users[u],
                members.get(u),
                facts.get(u, {}),
                sends.get(u, ()),
                may_enter=batch.kind == "enter",
            )
            for u in ids
            if u in users
        ]
        with metrics.timed("engine.decide", len(subjects)):
            decisions = decide(program, subjects, now)
        messages = [m for d in decisions for m in d.messages]
        with metrics.timed("store.commit_batch", len(decisions)), store.writing() as conn:
            store.write_members(conn, ws, key, [d.member for d in decisions])
            report.messages = store.insert_messages(conn, ws, key, messages)
            if not store.finish_batch(conn, batch, now, time.perf_counter() - started):
                raise LeaseLost(f"batch {batch.id} was claimed by another worker")
            following = _claim_next(store, conn, claim_from, now)
    report.changed = len(decisions)
    report.entered = sum(d.entered for d in decisions)
    return report, following


def _claim_next(store: Store, conn: Connection, lane: str | None, now: float) -> Batch | None:
    return None if lane is None else store.claim_batch(lane, now, BATCH_LEASE, conn)
