"""The planner's probes after a big entry, on a store whose statistics no one refreshed
(this machine's PostgreSQL runs no autovacuum): `refresh_statistics` analyzes the tables that
grew, and the probes read memberships by key, not the campaign's whole membership per user."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from drumbeat.config import settings
from drumbeat.pipeline.programs import Programs
from drumbeat.pipeline.runner import Runner
from drumbeat.store import Store, open_store
from tests.e2e.helpers import send, wait
from tests.e2e.running import WORKSPACE, own_store, prepare

USERS = 2000


@pytest.fixture
def entered(database_url: str, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    """A store where USERS users entered a campaign, its statistics as before they did."""
    with own_store(database_url) as url:
        prepare(url, [send("one"), wait("1h"), send("two")], USERS)
        config = settings(
            database_url=url, workspace=WORKSPACE, outbox_file=str(tmp_path / "out.jsonl")
        )
        store = open_store(url, batch_size=100)
        # The tick's probes keep statistics at most once a second (`keep_statistics`): on a
        # slow machine they would analyze the members half written, by chance. Held off
        # here, so that the tests start from statistics of the tables still empty.
        store._statistics_kept_at = math.inf
        runner = Runner(store, config)
        runner.tick(time.time())  # refreshes the statistics first: of tables still empty
        runner.close()
        yield store
        store.close()


def probes(store: Store) -> list[tuple[str, Any]]:
    """The planner's probes of the entrants (by key, from one list), as sent."""
    sent: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "memberships" in statement and ("unnest" in statement or "json_each" in statement):
            sent.append((statement, parameters))

    ws = store.workspace_id(WORKSPACE)
    ids = [f"u{n}" for n in range(0, USERS, USERS // 100)]
    programs = Programs(store)
    programs.refresh()
    audience = programs.audience(ws, "c")
    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        assert len(list(store.changed_members(ws, "c", ids))) == len(ids)
        now = time.time()
        assert not list(
            store.entry_candidates(ws, "c", audience, now, since=now, reentry=None, changed=ids)
        )
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)
    return sent


def plan_of(store: Store, statement: str, parameters: Any) -> str:
    explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(explain + statement, parameters).all()
    return "\n".join(str(row[-1]) for row in rows)


def memberships_stat(store: Store, column: str) -> int:
    with store.engine.connect() as conn:
        query = f"SELECT {column} FROM pg_stat_user_tables WHERE relname = 'memberships'"
        return int(conn.exec_driver_sql(query).scalar_one())


def analyzed(store: Store) -> int:
    return memberships_stat(store, "analyze_count")


def counted(store: Store) -> int:
    return memberships_stat(store, "n_mod_since_analyze")


def refreshed(store: Store) -> None:
    """`refresh_statistics`, once PostgreSQL's counters show the members written (they come
    in a second or so after the writes)."""
    if store.dialect == "postgresql":
        deadline = time.monotonic() + 30
        while counted(store) < USERS:
            assert time.monotonic() < deadline, "the server never counted the members written"
            time.sleep(0.1)
    store.refresh_statistics()


def test_after_a_big_entry_members_are_probed_by_key(entered: Store) -> None:
    refreshed(entered)
    sent = probes(entered)
    assert len(sent) == 2  # the members among the changed users, the entrants among them
    for statement, parameters in sent:
        plan = plan_of(entered, statement, parameters)
        if entered.dialect == "sqlite":
            assert "memberships USING PRIMARY KEY" in plan, plan
        else:  # not the (workspace, state, due) index through the campaign's whole membership
            assert "using pk_memberships on memberships" in plan, plan
            assert "ix_memberships" not in plan and "Seq Scan on memberships" not in plan, plan


def test_only_tables_much_changed_are_analyzed(entered: Store) -> None:
    if entered.dialect == "sqlite":
        pytest.skip("SQLite's refresh analyzes every table: it counts no changes")
    before = analyzed(entered)
    refreshed(entered)
    assert analyzed(entered) == before + 1
    entered.refresh_statistics()
    assert analyzed(entered) == before + 1  # nothing changed since


def more_members(store: Store, n: int) -> None:
    """`n` more members, of another campaign, as a big entry writes them."""
    ws = store.workspace_id(WORKSPACE)
    with store.writing() as conn:
        first = conn.exec_driver_sql("SELECT count(*) FROM memberships").scalar_one()
        conn.exec_driver_sql(
            "INSERT INTO memberships (workspace_id, campaign_key, user_id, state, position,"
            " entry_count, entered_at, step_started_at, version) SELECT %s, 'other', 'x' || g,"
            " 'active', 'steps[0]', 1, 0, 0, 1 FROM generate_series(%s::int, %s::int) AS g",
            (ws, first, first + n - 1),
        )


def kept(store: Store, changes: int) -> None:
    """`keep_statistics` once PostgreSQL's counters show `changes` since the last ANALYZE,
    its once-a-second limit lifted."""
    deadline = time.monotonic() + 30
    while counted(store) < changes:
        assert time.monotonic() < deadline, "the server never counted the members written"
        time.sleep(0.1)
    store._statistics_kept_at = -math.inf
    store.keep_statistics()


def test_a_ticks_probes_analyze_a_table_never_analyzed_or_about_doubled_only(
    entered: Store,
) -> None:
    if entered.dialect == "sqlite":
        pytest.skip("a tick keeps no statistics on SQLite (`refresh_statistics` reads indexes)")
    before = analyzed(entered)
    kept(entered, USERS)  # the members of the big entry, written since the tables were empty
    assert analyzed(entered) == before + 1
    more_members(entered, USERS // 2)  # grown by half: autovacuum's tenth, not doubled
    kept(entered, USERS // 2)
    assert analyzed(entered) == before + 1
    more_members(entered, USERS // 2 + 100)  # now more changes than rows at the last ANALYZE
    kept(entered, USERS + 100)
    assert analyzed(entered) == before + 2


def test_a_full_pass_streams_without_jit_compilation(entered: Store) -> None:
    if entered.dialect == "sqlite":
        pytest.skip("SQLite compiles nothing")
    seen: list[str] = []

    def jit_then(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().startswith("SELECT users.user_id"):
            # the statement's own transaction, on another cursor of its connection
            seen.append(cursor.connection.execute("SHOW jit").fetchone()[0])

    ws = entered.workspace_id(WORKSPACE)
    programs = Programs(entered)
    programs.refresh()
    audience = programs.audience(ws, "c")
    event.listen(entered.engine, "before_cursor_execute", jit_then)
    try:
        list(entered.entry_candidates(ws, "c", audience, time.time(), since=None, reentry=None))
    finally:
        event.remove(entered.engine, "before_cursor_execute", jit_then)
    assert seen == ["off"]
