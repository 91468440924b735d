"""Outbox claims on both stores: leases and retries count real time, whatever the store's
(virtual) clock says, and a claim records results only for the rows it still holds."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from psycopg import sql as pg_sql
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from drumbeat.engine.member import OutMessage
from drumbeat.store import open_store
from drumbeat.store.outbox_claims import _CLAIMED_IDS
from drumbeat.store.sends import SendResult

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


def explain(store, query, before=(), steer=True, locked=True, generic=True):
    """The plan of a claim's query, one text. SQLite: its plan. PostgreSQL: the generic plan
    of the query prepared with its parameters (psycopg prepares a statement run five times,
    and a generic plan cannot read a parameter's value), told to avoid scans and sorts where
    it can (`steer`), so a Sort left in the plan means no index serves the claim's order.
    `before`: statements run first, in the same transaction (rolled back). `locked`: as a
    claim runs it on PostgreSQL (FOR UPDATE SKIP LOCKED). `generic` False: the plan made
    for these values (as the server plans a statement's first runs, and may keep doing)."""
    with store.engine.connect() as conn:
        for statement in before:
            conn.exec_driver_sql(statement)
        if store.dialect != "postgresql":
            sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
            return "\n".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        if locked:
            query = query.with_for_update(skip_locked=True)
        compiled = query.compile(
            dialect=PGDialect_psycopg(paramstyle="numeric_dollar"),
            compile_kwargs={"render_postcompile": True},
        )
        raw = conn.connection.driver_connection
        values = [pg_sql.Literal(compiled.params[name]) for name in compiled.positiontup]
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort") if steer else ():
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        mode = "force_generic_plan" if generic else "force_custom_plan"
        conn.exec_driver_sql(f"SET LOCAL plan_cache_mode = {mode}")
        conn.exec_driver_sql(f"PREPARE claim_pick AS {compiled}")
        args = pg_sql.SQL(", ").join(values).as_string(raw)
        plan = "\n".join(
            row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE claim_pick({args})")
        )
        conn.exec_driver_sql("DEALLOCATE claim_pick")
        return plan


def claim_plan(store, channel, before=(), steer=True, generic=True):
    """The plan of a claim of 1,000 rows of `channel` (None: any): on PostgreSQL its one
    statement; on SQLite each of its queries in turn, one plan after the other."""
    if store.dialect == "postgresql":
        query = store.claim_statement(NOW, REAL, 1000, 5.0, channel)
        return explain(store, query, before, steer=steer, locked=False, generic=generic)
    picks = store.claim_picks(NOW, REAL, channel)
    return "\n--\n".join(explain(store, pick.limit(1000), before) for pick in picks)


@pytest.mark.parametrize("channel_name", [None, "a-channel-without-rows"])
def test_a_claim_reads_an_index_in_its_order_for_each_kind_of_row_and_sorts_nothing(
    store, channel_name
):
    plan = claim_plan(store, channel_name)
    # a channel's first tries: its own index, or (the table nearly empty, as here, so the
    # planner may take either) the one of all channels, filtered: both in the claim's order;
    # with many rows of other channels: test_a_rate_limited_channel_with_few_rows_due_claims_…
    due = ("ix_outbox_due",) if channel_name is None else ("ix_outbox_channel_due", "ix_outbox_due")
    for allowed in (("ix_outbox_lease",), ("ix_outbox_retry",), due):
        assert any(index in plan for index in allowed), plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
    if store.dialect == "postgresql":  # each kind's pick locks, skipping rows held elsewhere
        assert plan.count("LockRows") == 3, plan


FILL_TWO_CHANNELS = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO outbox (workspace_id, dedupe_key, campaign_key, step_id, user_id, entry_count,
                    channel, payload, status, attempts, available_at, created_at)
SELECT 1, 'plan-test/' || i, 'c', 's', 'u' || i, 1, CASE WHEN i = i / 10 * 10 THEN 'sms' ELSE
       'email' END, '{}', 'pending', 0, 0, 0 FROM n
"""


def test_a_rate_limited_channel_with_few_rows_due_claims_from_its_own_index(store):
    """20,000 rows due on two channels: a claim for a third, with none due, must read its
    channel's index, not pass over every row due in `ix_outbox_due`, whatever the plan."""
    before = (FILL_TWO_CHANNELS, "ANALYZE outbox")
    plan = claim_plan(store, "a-channel-without-rows", before, steer=False)
    assert "ix_outbox_channel_due" in plan, plan


FILL_USERS = """
INSERT INTO users (workspace_id, user_id, email, unsubscribed, created_at, attributes, updated_at,
                   version)
SELECT 1, 'u' || i, 'u' || i || '@example.com', false, 0, '{}', 0, 1
FROM generate_series(1, 20000) AS i
"""
FILL_USERS_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO users (workspace_id, user_id, email, unsubscribed, created_at, attributes, updated_at,
                   version)
SELECT 1, 'u' || i, 'u' || i || '@example.com', 0, 0, '{}', 0, 1 FROM n
"""


def test_a_claim_finds_its_rows_and_recipients_by_key_whatever_the_tables_hold(store):
    """20,000 rows due and their 20,000 recipients: a claim of 1,000 must reach the rows it
    updates and their users through the keys, not hash or merge the whole tables (a claim
    then cost in proportion to the outbox and the users, not to itself)."""
    if store.dialect != "postgresql":  # the claimed rows read back with their users, by ids
        before = (FILL_TWO_CHANNELS, FILL_USERS_SQLITE, "ANALYZE")
        with store.engine.connect() as conn:
            for statement in before:
                conn.exec_driver_sql(statement)
            explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {_CLAIMED_IDS}", ("[1, 2]",))
            plan = "\n".join(row[-1] for row in explained)
        assert "SEARCH o USING INTEGER PRIMARY KEY" in plan, plan
        assert "SEARCH u USING INDEX sqlite_autoindex_users_1" in plan, plan
        assert "SCAN o" not in plan and "SCAN u" not in plan, plan
        return
    before = (FILL_TWO_CHANNELS, FILL_USERS, "ANALYZE outbox", "ANALYZE users")
    for generic in (True, False):
        plan = claim_plan(store, None, before, steer=False, generic=generic)
        assert "pk_outbox" in plan and "pk_users" in plan, plan
        assert "Seq Scan" not in plan and "Hash" not in plan and "Merge" not in plan, plan


def test_the_next_retry_is_read_from_the_retries_index(store):
    plan = explain(store, store.next_retry_pick(NOW), locked=False)
    assert "ix_outbox_retry" in plan and "Sort" not in plan and "TEMP B-TREE" not in plan, plan


def test_a_claim_takes_run_out_leases_and_due_retries_first_then_the_oldest_due(
    store, workspace_name
):
    ws = store.workspace_id(workspace_name)
    messages = [  # u0 is due last, u4 not due yet
        OutMessage(f"{workspace_name}/c/s/u{n}/1", "s", f"u{n}", 1, workspace_name, {}, at)
        for n, at in enumerate([NOW - 1, NOW - 4, NOW - 3, NOW - 2, NOW + 1])
    ]
    with store.writing() as conn:
        store.insert_messages(conn, ws, "c", messages)
    leased = store.claim_messages(NOW, REAL, 1, 5.0, workspace_name)  # u1: its lease runs out
    retried = store.claim_messages(NOW, REAL, 1, 5.0, workspace_name)  # u2: retried at REAL+5
    store.record_results([SendResult(retried[0].id, retried[0].fence, "pending", REAL + 5)], NOW)
    held = store.claim_messages(NOW, REAL + 4, 1, 60.0, workspace_name)  # u3: still held
    assert [r.user_id for r in leased + retried + held] == ["u1", "u2", "u3"]
    order = [
        store.claim_messages(NOW, REAL + 6, 1, 60.0, workspace_name)[0].user_id for _ in range(3)
    ]
    assert order == ["u1", "u2", "u0"]  # the run-out lease, the retry, then the oldest due
    assert store.claim_messages(NOW, REAL + 6, 10, 60.0, workspace_name) == []  # u4 not due
    assert [
        r.user_id for r in store.claim_messages(NOW + 1, REAL + 6, 10, 60.0, workspace_name)
    ] == ["u4"]


def test_results_of_a_claim_are_written_each_to_its_row(store, channel, workspace_name):
    rows = claim(store, channel, REAL)
    outcomes = [
        SendResult(rows[0].id, rows[0].fence, "sent", provider_id="p-0"),
        SendResult(rows[1].id, rows[1].fence, "failed", error="bounced"),
        SendResult(rows[2].id, rows[2].fence, "pending", retry_at=REAL + 30, error="busy"),
    ]
    assert store.record_results(outcomes, NOW) == 0
    ws = store.workspace_id(workspace_name)
    found = [
        (r["user_id"], r["status"], r["sent_at"], r["last_error"]) for r in store.outbox_rows(ws)
    ]
    assert found == [
        ("u0", "sent", NOW, None),
        ("u1", "failed", None, "bounced"),
        ("u2", "pending", None, "busy"),
    ]
    [retry] = claim(store, channel, REAL + 30)
    assert retry.id == rows[2].id
