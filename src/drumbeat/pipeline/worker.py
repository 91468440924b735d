"""The worker's unit of work: one batch. Load in bulk (users, memberships, event facts,
recent sends: one query per kind), run the engine, and write memberships, outbox rows and
the batch's completion in one transaction guarded by the batch's fence.

With a frequency cap, the recent sends the engine decided from are read again inside that
transaction, with the recipients locked (PostgreSQL) or the database's write lock held
(SQLite): if another batch (another campaign, another worker) queued a message for one of
them in between, nothing is written and the batch is worked again from fresh data, so the
cap holds across campaigns and workers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from drumbeat import metrics
from drumbeat.engine.machine import decide
from drumbeat.engine.member import Decision, Subject
from drumbeat.engine.program import Program
from drumbeat.logs import fields
from drumbeat.pipeline.programs import Programs
from drumbeat.store import Store
from drumbeat.store.batch_claims import Batch
from drumbeat.store.owners import claim_owner

log = logging.getLogger(__name__)
BATCH_LEASE = 300.0  # real seconds a worker may hold a batch before another may take it
CAP_ATTEMPTS = 5  # times a batch is worked again when other sends overtook its cap check


class LeaseLost(Exception):
    """Another worker claimed this batch after our lease ran out; our work was rolled back."""


class CapOvertaken(Exception):
    """Another batch queued messages for this batch's recipients after it read their recent
    sends; nothing was written, and the batch must be worked again."""


@dataclass
class BatchReport:
    batch_id: int
    users: int = 0
    changed: int = 0
    entered: int = 0
    messages: int = 0
    outcome: str = "done"  # skipped: its campaign was no longer active


@dataclass
class Staged:
    """A batch worked out but not written: the engine's decisions, and the recent sends of
    the recipients they were decided from (with a cap)."""

    batch: Batch
    program: Program
    decisions: list[Decision]
    sends: dict[str, tuple[float, ...]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


def process_batch(
    store: Store, programs: Programs, batch: Batch, now: float, *, claim_from: str | None = None
) -> tuple[BatchReport, Batch | None]:
    """Run a batch; with `claim_from`, also claim that lane's next batch in the transaction
    that finishes this one (see `Store.claim_batch`). Returns the report and that batch.

    Done again from the start if the connection is lost (`Store.retrying`): if the commit
    went through unseen, the batch's writes are done again from the state they left (its
    fence still holds; members already moved on decide nothing new, messages are kept once
    by their key), and the next batch's claim, under the same owner, takes up the batch
    that commit claimed."""
    owner = claim_owner()
    started = time.perf_counter()
    outcome = "failed"
    try:
        report, following = store.retrying(
            lambda: _process_batch(store, programs, batch, now, claim_from, owner),
            f"batch {batch.id}",
        )
        outcome = report.outcome
        return report, following
    except LeaseLost:
        outcome = "lease_lost"
        raise
    finally:
        _finished(batch, outcome, time.perf_counter() - started)


def _finished(batch: Batch, outcome: str, seconds: float) -> None:
    """A batch's line in the log (JSON fields with DRUMBEAT_LOG_FORMAT=json) and timings.
    At info level whatever the outcome: a failure's cause is logged where it is handled."""
    users = len(batch.user_ids)
    metrics.observe_batch(
        batch.workspace_id, batch.campaign_key, batch.lane, seconds, users, outcome
    )
    log.info(
        "batch %s of %s (lane %s): %s users in %.3f s, %s",
        batch.id,
        batch.campaign_key,
        batch.lane,
        users,
        seconds,
        outcome,
        extra=fields(
            batch=batch.id,
            workspace=batch.workspace_id,
            campaign=batch.campaign_key,
            lane=batch.lane,
            users=users,
            seconds=round(seconds, 6),
            outcome=outcome,
        ),
    )


def _process_batch(
    store: Store,
    programs: Programs,
    batch: Batch,
    now: float,
    claim_from: str | None,
    owner: str,
) -> tuple[BatchReport, Batch | None]:
    report = BatchReport(batch.id, len(batch.user_ids))
    program = programs.get(batch.workspace_id, batch.campaign_key)
    if program is None:  # paused or archived since it was planned
        report.outcome = "skipped"
        with store.writing() as conn:
            _, following = store.finish_batch(
                conn, batch, now, 0.0, "skipped", lane=claim_from, lease=BATCH_LEASE, owner=owner
            )
            return report, following
    for _ in range(CAP_ATTEMPTS):
        staged = stage_batch(store, program, batch, now)
        try:
            report.messages, following = commit_batch(
                store, staged, now, claim_from=claim_from, owner=owner
            )
        except CapOvertaken:
            continue
        report.changed = len(staged.decisions)
        report.entered = sum(d.entered for d in staged.decisions)
        return report, following
    raise CapOvertaken(f"batch {batch.id}: other sends overtook it {CAP_ATTEMPTS} times")


def stage_batch(store: Store, program: Program, batch: Batch, now: float) -> Staged:
    """Load the batch's users and members in bulk and run the engine; writes nothing."""
    ws, ids = batch.workspace_id, batch.user_ids
    staged = Staged(batch, program, [])
    with metrics.timed("stage.batch", len(ids)):
        users = store.load_users(ws, ids)
        members = store.load_members(ws, batch.campaign_key, ids)
        facts = (
            store.event_counts(ws, ids, program.event_conditions, now)
            if program.event_conditions
            else {}
        )
        if program.cap:
            staged.sends = store.recent_sends(ws, ids, now - program.cap.per)
        subjects = [
            Subject(
                users[u],
                members.get(u),
                facts.get(u, {}),
                staged.sends.get(u, ()),
                may_enter=batch.kind == "enter",
            )
            for u in ids
            if u in users
        ]
        with metrics.timed("engine.decide", len(subjects)):
            staged.decisions = decide(program, subjects, now)
    return staged


def commit_batch(
    store: Store,
    staged: Staged,
    now: float,
    *,
    claim_from: str | None = None,
    owner: str | None = None,
) -> tuple[int, Batch | None]:
    """Write a staged batch in one transaction: memberships, outbox rows, the batch done
    (if its fence still holds: else LeaseLost), and the next batch of `claim_from` claimed.
    Returns the messages queued and that batch. Raises CapOvertaken, writing nothing, if
    the recipients' recent sends changed since they were read."""
    batch, program = staged.batch, staged.program
    ws, key = batch.workspace_id, batch.campaign_key
    messages = [m for d in staged.decisions for m in d.messages]
    with metrics.timed("store.commit_batch", len(staged.decisions)), store.writing() as conn:
        if program.cap and messages:
            recipients = sorted({m.user_id for m in messages})
            store.lock_users(conn, ws, recipients)
            since = now - program.cap.per
            current = store.recent_sends(ws, recipients, since, conn=conn)
            if any(current.get(u, ()) != staged.sends.get(u, ()) for u in recipients):
                raise CapOvertaken(f"batch {batch.id}")
        store.write_members(conn, ws, key, [d.member for d in staged.decisions])
        queued = store.insert_messages(conn, ws, key, messages)
        report = {
            "changed": len(staged.decisions),
            "entered": sum(d.entered for d in staged.decisions),
            "messages": queued,
        }
        seconds = time.perf_counter() - staged.started
        finished, following = store.finish_batch(
            conn,
            batch,
            now,
            seconds,
            report=report,
            lane=claim_from,
            lease=BATCH_LEASE,
            owner=owner,
        )
        if not finished:
            raise LeaseLost(f"batch {batch.id} was claimed by another worker")
        return queued, following
