"""Attribute indexes (store/indexes.py): SQLite and PostgreSQL keep one per attribute (and time
field) that live campaigns' rules compare, in step with apply and status changes; PostgreSQL
builds them concurrently and rebuilds an INVALID one. An audience counts the same with and
without them, and a selective one is found through its index."""

from __future__ import annotations

import random
import re
import threading
import time
import warnings
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from drumbeat.campaigns import apply, plan_apply, set_status
from drumbeat.cli import app
from drumbeat.cli.context import State
from drumbeat.client import Drumbeat
from drumbeat.model.campaign import parse_campaign
from drumbeat.model.rules import parse_rule
from drumbeat.rules.sql import compile_sql
from drumbeat.store import Store, migrate, open_store
from drumbeat.store.indexes import IndexSync
from drumbeat.store.schema import in_schema, metadata, users

ODD = "it's a plan ü 名'); DROP TABLE users; --"
SEND = {"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hi"}}


def people(n: int, seed: int = 7) -> list[dict[str, Any]]:
    r = random.Random(seed)
    calls = []
    for i in range(n):
        traits: dict[str, Any] = {
            "plan": r.choice(["free"] * 7 + ["paid", "trial"]),
            "country": r.choice(["US", "US", "GB", "DE", "FR", "JP"]),
            "beta": r.random() < 0.2,
            ODD: r.choice(["x", "y", "z'q"]),
        }
        if i % 10:  # some users have no seats at all
            traits["seats"] = r.randint(1, 50)
        calls.append({"user_id": f"u{i:05d}", "traits": traits})
    return calls


def definition(key: str, audience: Any, **extra: Any) -> dict[str, Any]:
    return {"key": key, "name": key, "audience": audience, "steps": [SEND], **extra}


def put(client: Drumbeat, doc: dict[str, Any], *, activate: bool = True) -> None:
    plan = plan_apply(parse_campaign(doc), client.store, client.ws)
    apply(plan, client.store, client.ws, client.clock(), activate=activate)


def indexed(store: Store) -> dict[str, tuple[str, ...]]:
    """Built attribute index → the live campaigns reading it, by attribute."""
    return {ix.attribute or "?": ix.campaigns for ix in store.attribute_indexes() if ix.built}


def named_like_ours(store: Store) -> list[str]:
    """Every index on users whose name has the attribute-index prefix, from the catalog."""
    sql = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE :prefix"
        if store.dialect == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE indexname LIKE :prefix"
    )
    with store.engine.connect() as conn:
        return list(conn.execute(sa.text(sql), {"prefix": "ix_users_attr_%"}).scalars())


def test_live_rules_get_indexes_and_archive_drops_them(client):
    client.identify_many(people(200))
    every_rule = definition(
        "every-rule",
        {"all": [{"attr": "plan", "eq": "free"}, {"attr": "email", "exists": True}]},
        goal={"rule": {"attr": "seats", "gte": 10}},
        steps=[
            {"wait_until": {"rule": {"attr": "country", "in": ["US"]}, "timeout": "1d"}},
            {"branch": {"id": "b", "if": {"attr": "beta", "eq": True}, "then": [SEND]}},
            {"wait_until": {"rule": {"attr": "company", "exists": True}, "timeout": "1d"}},
        ],
    )
    put(client, every_rule, activate=False)
    assert indexed(client.store) == {}  # a draft is not live
    set_status(client.store, client.ws, "every-rule", "active", client.clock())
    put(client, definition("also-plan", {"attr": "plan", "in": ["paid", "trial"]}))
    ws = client.store.workspace_name(client.ws)
    # standard fields and exists-only attributes read no value an index could hold
    assert indexed(client.store) == {
        "beta": (f"{ws}/every-rule",),
        "country": (f"{ws}/every-rule",),
        "plan": (f"{ws}/also-plan", f"{ws}/every-rule"),
        "seats": (f"{ws}/every-rule",),
    }
    assert sorted(named_like_ours(client.store)) == sorted(
        ix.name for ix in client.store.attribute_indexes()
    )
    set_status(client.store, client.ws, "every-rule", "paused", client.clock())
    assert set(indexed(client.store)) == {"beta", "country", "plan", "seats"}  # paused: live
    set_status(client.store, client.ws, "every-rule", "archived", client.clock())
    assert indexed(client.store) == {"plan": (f"{ws}/also-plan",)}
    set_status(client.store, client.ws, "also-plan", "archived", client.clock())
    assert indexed(client.store) == {} and named_like_ours(client.store) == []


def test_time_fields_are_indexed_while_a_live_rule_compares_them(client):
    """`created_at` / `last_seen_at` are indexed only for live rules: each entry is a random
    insert for every user written."""
    now = client.clock()
    calls = people(3000)
    for i, call in enumerate(calls):  # seen in the last 10 days, but for one user
        call["traits"]["last_seen_at"] = now - (30 if i == 1234 else i % 10) * 86400
    client.identify_many(calls)
    lapsed = {"attr": "last_seen_at", "before": "21d ago"}
    client.store.sync_attribute_indexes()  # earlier tests' campaigns were archived unsynced
    assert "_last_seen_at" not in query_plan(client.store, client.ws, lapsed, now)
    put(client, definition("lapsed", lapsed))
    ws = client.store.workspace_name(client.ws)
    assert indexed(client.store) == {"last_seen_at": (f"{ws}/lapsed",)}
    (name,) = named_like_ours(client.store)
    assert name.startswith("ix_users_attr_last_seen_at_")
    assert uses(client.store, name, query_plan(client.store, client.ws, lapsed, now))
    assert client.store.select_audience(client.ws, parse_rule(lapsed), now) == ["u01234"]
    set_status(client.store, client.ws, "lapsed", "archived", client.clock())
    assert indexed(client.store) == {} and named_like_ours(client.store) == []


# The revision that dropped the schema's time indexes, by database.
DROPPED_TIME_INDEXES = {"sqlite": "0007", "postgresql": "0012"}


def test_a_migrated_store_gets_the_time_index_a_live_rule_wants(client, database_url):
    """Revisions 0007 (SQLite) and 0012 (PostgreSQL) drop the time indexes the schema kept
    always (their downgrades build them again); opening the store then builds the ones live
    rules compare, so a live campaign never runs without its index."""
    put(client, definition("new-users", {"attr": "created_at", "after": "3d ago"}))
    (built,) = named_like_ours(client.store)
    revision = DROPPED_TIME_INDEXES[client.store.dialect]
    with client.store.engine.connect() as conn, conn.begin():  # back to before that revision
        conn.exec_driver_sql(f"DROP INDEX {built}")
        config = migrate._config(conn)
        before = ScriptDirectory.from_config(config).get_revision(revision).down_revision
        command.downgrade(config, str(before))
    assert set(index_names(client.store)) >= SCHEMA_TIME_INDEXES  # the schema kept them always
    reopened = open_store(database_url)
    try:
        assert named_like_ours(reopened) == [built]
        assert not SCHEMA_TIME_INDEXES & set(index_names(reopened))
    finally:
        reopened.close()


SCHEMA_TIME_INDEXES = {"ix_users_workspace_id_created_at", "ix_users_workspace_id_last_seen_at"}


def index_names(store: Store) -> list[str]:
    """Every index on `users`, from the catalog."""
    sql = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'"
        if store.dialect == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'users'"
    )
    with store.engine.connect() as conn:
        return list(conn.exec_driver_sql(sql).scalars())


def test_schema_comparison_leaves_the_attribute_indexes_out(client):
    """Alembic's comparison (autogenerate) would want to drop indexes no revision made."""
    client.identify_many(people(50))
    put(
        client,
        definition(
            "seen",
            {"all": [{"attr": "plan", "eq": "free"}, {"attr": "last_seen_at", "after": "2d ago"}]},
        ),
    )
    assert len(named_like_ours(client.store)) == 2
    with warnings.catch_warnings(), client.store.engine.connect() as conn:
        # SQLite cannot reflect the expression index (and says so): it is left out anyway
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        context = MigrationContext.configure(conn, opts={"include_object": in_schema})
        assert compare_metadata(context, metadata) == []
        unfiltered = compare_metadata(MigrationContext.configure(conn), metadata)
    # without the filter it would (SQLite reflects only the time field's, a plain index)
    removed = {op[1].name for op in unfiltered if op[0] == "remove_index"}
    assert removed and removed <= set(named_like_ours(client.store))


RULES = [
    {"attr": "plan", "eq": "free"},
    {"attr": "plan", "ne": "free"},
    {"attr": "country", "in": ["US", "GB"]},
    {"attr": "country", "not_in": ["US"]},
    {"attr": "country", "lt": "FR"},
    {"attr": "seats", "gte": 30},
    {"attr": "seats", "lt": 5},
    {"attr": "beta", "eq": True},
    {"attr": ODD, "eq": "z'q"},
    {"attr": ODD, "starts_with": "x"},
    {"all": [{"attr": "plan", "eq": "free"}, {"attr": "seats", "gte": 3}]},
    {"any": [{"attr": "plan", "eq": "paid"}, {"not": {"attr": "seats", "gte": 20}}]},
]


def test_odd_names_are_safe_and_counts_do_not_change(client):
    client.identify_many(people(300))
    now = client.clock()
    rules = [parse_rule(rule) for rule in RULES]
    before = [client.store.count_audience(client.ws, rule, now) for rule in rules]
    ids = [client.store.select_audience(client.ws, rule, now, limit=1000) for rule in rules]
    put(client, definition("odd", {"all": [{"attr": ODD, "eq": "x"}, *RULES]}))
    names = {ix.attribute: ix.name for ix in client.store.attribute_indexes() if ix.built}
    assert set(names) == {"plan", "country", "seats", "beta", ODD}
    assert all(re.fullmatch(r"ix_users_attr_[a-z0-9_]+", name) for name in names.values())
    assert names[ODD].startswith("ix_users_attr_it_s_a_plan_drop_table_")
    assert client.store.count_users(client.ws) == 300  # the odd name did no harm
    assert [client.store.count_audience(client.ws, rule, now) for rule in rules] == before
    assert [client.store.select_audience(client.ws, r, now, limit=1000) for r in rules] == ids
    assert min(before) > 0 and max(before) < 300  # the rules select something, not everyone


def query_plan(store: Store, ws: int, rule_doc: Any, now: float) -> str:
    """The database's plan of the audience count, its lines joined by " / "."""
    rule = parse_rule(rule_doc)
    where = compile_sql(rule, types=store.attribute_types(ws), now=now, dialect=store.dialect)
    query = sa.select(sa.func.count()).select_from(users).where(users.c.workspace_id == ws, where)
    sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            lines = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        else:
            lines = list(conn.exec_driver_sql(f"EXPLAIN (COSTS OFF) {sql}").scalars())
    return " / ".join(lines)


def uses(store: Store, index: str, plan: str) -> bool:
    """Whether the plan reads the table through `index`."""
    if store.dialect == "sqlite":
        return f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan
    return (
        re.search(rf"(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) {index}\b", plan)
        is not None
    )


def test_the_planner_finds_a_selective_audience_through_its_index(client):
    client.identify_many(people(5000))
    client.identify("u04321", {"plan": "enterprise"})
    audience = {"attr": "plan", "eq": "enterprise"}
    now = client.clock()
    client.store.sync_attribute_indexes()  # earlier tests' campaigns were archived unsynced
    assert "ix_users_attr_" not in query_plan(client.store, client.ws, audience, now)
    put(client, definition("enterprise", audience))
    (name,) = named_like_ours(client.store)
    plan = query_plan(client.store, client.ws, audience, now)
    assert uses(client.store, name, plan), plan
    assert client.store.select_audience(client.ws, parse_rule(audience), now) == ["u04321"]


def test_an_invalid_index_is_found_and_rebuilt(client, cli):
    """A failed or interrupted CREATE INDEX CONCURRENTLY leaves an INVALID index behind: no
    query uses it, every write maintains it. Here a UNIQUE build fails on shared values."""
    if client.store.dialect != "postgresql":
        pytest.skip("SQLite builds an index in a transaction: a failed build leaves none")
    client.identify_many(people(200))
    put(client, definition("plans", {"attr": "plan", "eq": "paid"}))
    (name,) = named_like_ours(client.store)
    with client.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY {name}")
        with pytest.raises(sa.exc.IntegrityError):
            conn.exec_driver_sql(
                f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON users"
                " (workspace_id, (attributes ->> 'plan'))"
            )
    assert pg_index(client.store, name) == (False, True)  # invalid, unique
    [ix] = client.store.attribute_indexes()
    assert (ix.name, ix.state, ix.built) == (name, "invalid", False)
    assert "invalid" in cli("db", "indexes", "--format", "jsonl")
    assert "created 0, dropped 0, rebuilt 1 (invalid)" in cli("db", "indexes", "--sync")
    assert pg_index(client.store, name) == (True, False)  # valid, and the index sync wants
    [ix] = client.store.attribute_indexes()
    assert ix.state == "built"


def test_an_index_another_process_is_building_is_left_to_it(client):
    """A build in progress is INVALID too until it ends: a second sync meanwhile (another
    process's apply) neither drops nor builds it again, and the build ends valid."""
    if client.store.dialect != "postgresql":
        pytest.skip("SQLite builds an index in a transaction, which other writers wait for")
    client.identify_many(people(50))
    put(client, definition("plans", {"attr": "plan", "eq": "paid"}))
    (name,) = named_like_ours(client.store)
    engine = client.store.engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY {name}")
    results: list[object] = []
    with engine.connect() as writer:  # a write in progress: the build waits for it to end
        writer.execute(sa.update(users).where(users.c.workspace_id == client.ws), {"version": 9})
        building = threading.Thread(
            target=lambda: results.append(client.store.sync_attribute_indexes())
        )
        building.start()
        deadline = time.monotonic() + 30
        while [ix.state for ix in client.store.attribute_indexes()] != ["building"]:
            assert time.monotonic() < deadline and building.is_alive(), results
            time.sleep(0.05)
        assert client.store.sync_attribute_indexes() == IndexSync()
        writer.rollback()
    building.join(timeout=30)
    assert results == [IndexSync(created=(name,))]
    assert [ix.state for ix in client.store.attribute_indexes()] == ["built"]


def pg_index(store: Store, name: str) -> tuple[bool, bool]:
    """(indisvalid, indisunique) of a PostgreSQL index."""
    sql = "SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = CAST(:name AS regclass)"
    with store.engine.connect() as conn:
        valid, unique = conn.execute(sa.text(sql), {"name": name}).one()
    return bool(valid), bool(unique)


def test_sqlite_planner_uses_the_index_after_sync(client):
    if client.store.dialect != "sqlite":
        pytest.skip("analysis_limit and sqlite_stat1 are SQLite's")
    client.identify_many(people(3000))
    audience = {"all": [{"attr": "plan", "eq": "paid"}, {"attr": "seats", "gte": 45}]}
    now = client.clock()
    assert "ix_users_attr_" not in query_plan(client.store, client.ws, audience, now)
    put(client, definition("paid-big", audience))
    assert "USING INDEX ix_users_attr_" in query_plan(client.store, client.ws, audience, now)
    # the periodic refresh (limited to 2,000 entries an index) reads attribute indexes whole
    client.store.refresh_statistics()
    assert "USING INDEX ix_users_attr_" in query_plan(client.store, client.ws, audience, now)
    with client.store.engine.connect() as conn:
        stats = conn.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE idx LIKE 'ix_users_attr_%'"
        ).scalars()
        assert {stat.split()[0] for stat in stats} == {"3000"}


@pytest.fixture
def cli(database_url, workspace_name, monkeypatch):
    """Run `drumbeat …` in this process on the test's store; closes the clients it opens."""
    opened: list[Drumbeat] = []
    real_client = State.client

    def client(self: State) -> Drumbeat:
        made: Drumbeat = real_client(self)
        if made not in opened:
            opened.append(made)
        return made

    monkeypatch.setattr(State, "client", client)
    runner = CliRunner()
    base = ["--database-url", database_url, "--workspace", workspace_name]

    def run(*args: str) -> str:
        result = runner.invoke(app, [*base, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    yield run
    for made in opened:
        made.close()


def test_db_indexes_lists_and_syncs(cli, database_url, workspace_name, tmp_path, clock):
    with Drumbeat(database_url, workspace=workspace_name, clock=clock) as client:
        client.identify_many(people(50))
    path = tmp_path / "campaign.json"
    path.write_bytes(orjson.dumps(definition("cli", {"attr": "seats", "gte": 10})))
    run = cli

    run("campaign", "apply", str(path), "--activate")
    assert "--sync" in run("db", "indexes", "--help")

    def rows() -> list[dict[str, str]]:
        out = run("db", "indexes", "--format", "jsonl")
        return [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]

    [row] = rows()
    assert (row["attribute"], row["state"], row["read by"]) == (
        "seats",
        "built",
        f"{workspace_name}/cli",
    )
    with Drumbeat(database_url, workspace=workspace_name, clock=clock) as client:
        # archived behind the back of the sync (as if it had been interrupted)
        client.store.set_campaign_status(client.ws, "cli", "archived", clock())
    assert [(r["attribute"], r["state"]) for r in rows()] == [("seats", "unused")]
    assert "created 0, dropped 1" in run("db", "indexes", "--sync")
    assert rows() == []
