"""Attribute indexes (store/indexes.py): SQLite keeps one per attribute that live campaigns'
rules compare, in step with apply and status changes; PostgreSQL keeps none. Either way an
audience counts the same with and without them."""

from __future__ import annotations

import random
import re
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from typer.testing import CliRunner

from drumbeat.campaigns import apply, plan_apply, set_status
from drumbeat.cli import app
from drumbeat.cli.context import State
from drumbeat.client import Drumbeat
from drumbeat.model.campaign import parse_campaign
from drumbeat.model.rules import parse_rule
from drumbeat.rules.sql import compile_sql
from drumbeat.store import Store, migrate, open_store
from drumbeat.store.schema import users

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
    if client.store.dialect == "postgresql":
        assert indexed(client.store) == {} and named_like_ours(client.store) == []
        return
    ws = client.store.workspace_name(client.ws)
    # standard fields and exists-only attributes read no value an index could hold
    assert indexed(client.store) == {
        "beta": (f"{ws}/every-rule",),
        "country": (f"{ws}/every-rule",),
        "plan": (f"{ws}/also-plan", f"{ws}/every-rule"),
        "seats": (f"{ws}/every-rule",),
    }
    set_status(client.store, client.ws, "every-rule", "paused", client.clock())
    assert set(indexed(client.store)) == {"beta", "country", "plan", "seats"}  # paused: live
    set_status(client.store, client.ws, "every-rule", "archived", client.clock())
    assert indexed(client.store) == {"plan": (f"{ws}/also-plan",)}
    set_status(client.store, client.ws, "also-plan", "archived", client.clock())
    assert indexed(client.store) == {} and named_like_ours(client.store) == []


def test_time_fields_are_indexed_while_a_live_rule_compares_them(client):
    """SQLite indexes `created_at` / `last_seen_at` only for live rules (each entry is a random
    insert for every user written); PostgreSQL keeps both indexes of the schema always."""
    client.identify_many(people(100))
    lapsed = {"attr": "last_seen_at", "before": "21d ago"}
    if client.store.dialect == "postgresql":
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'users'"
        with client.store.engine.connect() as conn:
            names = set(conn.exec_driver_sql(sql).scalars())
        assert {"ix_users_workspace_id_created_at", "ix_users_workspace_id_last_seen_at"} <= names
        return
    now = client.clock()
    assert "last_seen_at" not in query_plan(client.store, client.ws, lapsed, now)
    put(client, definition("lapsed", lapsed))
    ws = client.store.workspace_name(client.ws)
    assert indexed(client.store) == {"last_seen_at": (f"{ws}/lapsed",)}
    assert "INDEX ix_users_attr_last_seen_at_" in query_plan(client.store, client.ws, lapsed, now)
    set_status(client.store, client.ws, "lapsed", "archived", client.clock())
    assert indexed(client.store) == {} and named_like_ours(client.store) == []


def test_a_migrated_sqlite_store_gets_the_time_index_a_live_rule_wants(client, database_url):
    """Revision 0007 drops the schema's time indexes on SQLite; opening the store then builds
    the ones live rules compare, so a live campaign never runs without its index."""
    if client.store.dialect != "sqlite":
        pytest.skip("PostgreSQL keeps both time indexes")
    put(client, definition("new-users", {"attr": "created_at", "after": "3d ago"}))
    (built,) = named_like_ours(client.store)
    with client.store.engine.connect() as conn, conn.begin():  # as before revision 0007
        conn.exec_driver_sql(f"DROP INDEX {built}")
        command.stamp(migrate._config(conn), "0006")
    reopened = open_store(database_url)
    try:
        assert named_like_ours(reopened) == [built]
    finally:
        reopened.close()


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
    if client.store.dialect == "sqlite":
        names = {ix.attribute: ix.name for ix in client.store.attribute_indexes() if ix.built}
        assert set(names) == {"plan", "country", "seats", "beta", ODD}
        assert all(re.fullmatch(r"ix_users_attr_[a-z0-9_]+", name) for name in names.values())
        assert names[ODD].startswith("ix_users_attr_it_s_a_plan_drop_table_")
    assert client.store.count_users(client.ws) == 300  # the odd name did no harm
    assert [client.store.count_audience(client.ws, rule, now) for rule in rules] == before
    assert [client.store.select_audience(client.ws, r, now, limit=1000) for r in rules] == ids
    assert min(before) > 0 and max(before) < 300  # the rules select something, not everyone


def query_plan(store: Store, ws: int, rule_doc: Any, now: float) -> str:
    rule = parse_rule(rule_doc)
    where = compile_sql(rule, types=store.attribute_types(ws), now=now, dialect="sqlite")
    query = sa.select(sa.func.count()).select_from(users).where(users.c.workspace_id == ws, where)
    sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        return " / ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))


def test_sqlite_planner_uses_the_index_after_sync(client):
    if client.store.dialect != "sqlite":
        pytest.skip("PostgreSQL keeps no attribute indexes")
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
    if database_url.startswith("postgresql"):
        assert "PostgreSQL keeps no attribute indexes" in run("db", "indexes", "--sync")
        return

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
