"""The store contract: one suite, run against SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager

import orjson
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from drumbeat.errors import InvalidInput
from drumbeat.model.attributes import AttrType
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.model.rules import parse_rule
from drumbeat.store import migrate, open_store
from drumbeat.store.schema import in_schema, metadata
from tests.e2e.running import wait_for


@pytest.fixture
def store(database_url):
    store = open_store(database_url, batch_size=3)
    yield store
    store.close()


@pytest.fixture
def ws(store, workspace_name):
    return store.workspace_id(workspace_name)


def test_migrations_build_exactly_the_schema(store):
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": in_schema})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_default_workspace_exists_without_setup(store):
    assert store.workspace_id("default", create=False) == 1


def test_unknown_workspace_is_refused_when_not_created(store):
    with pytest.raises(InvalidInput, match="no workspace"):
        store.workspace_id("nope", create=False)


def test_write_users_inserts_then_merges_attributes(store, ws):
    store.write_users(ws, [UserRecord("u1", {"email": "a@b.co"}, {"plan": "free", "seats": 2})], 10)
    store.write_users(
        ws, [UserRecord("u1", {"timezone": "UTC"}, {"plan": "paid", "seats": None})], 20
    )
    user = store.load_users(ws, ["u1"])["u1"]
    assert (user.email, user.timezone) == ("a@b.co", "UTC")
    assert user.attributes == {"plan": "paid"}
    assert (user.version, user.updated_at) == (2, 20)


def test_unchanged_user_keeps_version_and_updated_at(store, ws):
    record = UserRecord("u1", {"email": "a@b.co", "unsubscribed": True}, {"plan": "free"})
    assert store.write_users(ws, [record], 10) == 1
    assert store.write_users(ws, [record], 20) == 0
    user = store.load_users(ws, ["u1"])["u1"]
    assert (user.version, user.updated_at, user.unsubscribed) == (1, 10, True)


def test_a_batch_of_users_giving_different_fields_changes_only_what_each_gives(store, ws):
    first = [
        UserRecord("seen", {"email": "s@b.co", "last_seen_at": 5.0}, {"plan": "free"}),
        UserRecord("same", {"email": "x@b.co"}, {"plan": "free"}),
        UserRecord("plan", {"timezone": "UTC"}, {"plan": "free", "seats": 2}),
    ]
    assert store.write_users(ws, first, 10) == 3
    later = [
        UserRecord("seen", {"last_seen_at": 9.0}, {}),
        UserRecord("same", {}, {}),
        UserRecord("plan", {}, {"plan": "paid", "seats": None}),
        UserRecord("new", {}, {}),
    ]
    assert store.write_users(ws, later, 20) == 3  # "same" gave nothing new
    found = store.load_users(ws, ["seen", "same", "plan", "new"])
    seen, same, plan, new = (found[u] for u in ("seen", "same", "plan", "new"))
    assert (seen.email, seen.last_seen_at, seen.attributes) == ("s@b.co", 9.0, {"plan": "free"})
    assert (same.version, same.updated_at, same.email) == (1, 10, "x@b.co")
    assert (plan.timezone, plan.attributes, plan.version) == ("UTC", {"plan": "paid"}, 2)
    assert (new.version, new.attributes, new.unsubscribed) == (1, {}, False)


def test_a_batch_naming_a_user_twice_merges_in_order(store, ws):
    store.write_users(
        ws,
        [UserRecord("u1", {}, {"plan": "free", "a": 1}), UserRecord("u1", {}, {"plan": "paid"})],
        10,
    )
    assert store.load_users(ws, ["u1"])["u1"].attributes == {"plan": "paid", "a": 1}


def test_load_users_in_batches_skips_unknown_ids(store, ws):
    ids = [f"u{i:02d}" for i in range(10)]
    store.write_users(ws, [UserRecord(i, {}, {"n": k}) for k, i in enumerate(ids)], 10)
    found = store.load_users(ws, [*ids, "ghost"])
    assert sorted(found) == ids
    assert found["u07"].attributes == {"n": 7}


def test_attribute_types_register_once_and_clashes_are_refused(store, ws):
    store.write_users(
        ws, [UserRecord("u1", {}, {"plan": "free"})], 10, new_types={"plan": AttrType.STRING}
    )
    assert store.attribute_types(ws) == {"plan": AttrType.STRING}
    with pytest.raises(InvalidInput, match="plan"):
        store.write_users(
            ws, [UserRecord("u2", {}, {"plan": 3})], 10, new_types={"plan": AttrType.NUMBER}
        )
    assert "u2" not in store.load_users(ws, ["u2"])


def test_declare_attribute_refuses_standard_fields(store, ws):
    store.declare_attribute(ws, "zip", AttrType.STRING)
    assert store.attribute_types(ws)["zip"] == AttrType.STRING
    with pytest.raises(InvalidInput, match="standard field"):
        store.declare_attribute(ws, "email", AttrType.NUMBER)


def test_events_dedupe_by_message_id_and_create_the_users_they_name(store, ws):
    events = [
        EventRecord("u1", "login", 5.0, {"a": 1}, "m1"),
        EventRecord("u1", "login", 6.0, {}, "m1"),
        EventRecord("u2", "login", 7.0, {}, None),
    ]
    assert store.write_events(ws, events, 50) == 2
    assert store.write_events(ws, events[:1], 60) == 0
    assert store.count_events(ws) == 2
    users = store.load_users(ws, ["u1", "u2"])
    assert users["u1"].updated_at == users["u2"].updated_at == 50
    assert users["u2"].version == 1 and users["u2"].attributes == {}


@pytest.mark.parametrize("count", [5, 1003])  # one statement, or several (SQLite), or staged (PG)
def test_events_keep_their_properties_either_way_they_go_in(store, ws, count):
    properties = {"s": "é \\ \" ' {a,b} NULL", "n": 2.5, "list": [1, None, {"k": True}]}
    events = [
        EventRecord(f"u{i % 4}", "viewed", float(i), {**properties, "i": i}, f"m{i}")
        for i in range(count)
    ]
    assert store.write_events(ws, [*events, events[0]], 50) == count
    assert store.count_events(ws) == count
    assert sorted(store.load_users(ws, [f"u{i}" for i in range(5)])) == ["u0", "u1", "u2", "u3"]
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT user_id, name, ts, properties, received_at FROM events"
            f" WHERE workspace_id = {ws} AND message_id = 'm3'"
        ).one()
    loaded = orjson.loads(stored[3]) if isinstance(stored[3], str) else stored[3]
    assert (*stored[:3], loaded, stored[4]) == ("u3", "viewed", 3.0, {**properties, "i": 3}, 50)


def test_users_written_and_users_with_events_received_since_a_time(store, ws):
    store.write_users(ws, [UserRecord("quiet", {}, {}), UserRecord("busy", {}, {})], 10)
    events = [EventRecord("busy", "login", 5.0, {}, None), EventRecord("busy", "paid", 6.0)]
    store.write_events(ws, events, 30)  # old events, received now
    assert store.load_users(ws, ["busy"])["busy"].updated_at == 10  # its row was not written
    assert store.changed_users(ws, 20) == []
    assert sorted(store.event_users(ws, 20)) == [("busy", "login", 30), ("busy", "paid", 30)]
    store.write_users(ws, [UserRecord("quiet", {"email": "q@b.co"}, {})], 40)
    # the names written since it was made (at 10), each with when
    assert store.changed_users(ws, 20) == [("quiet", 40, 10, {"email": 40})]
    assert store.changed_users(ws, 41) == [] and store.event_users(ws, 41) == []


def test_workspaces_never_see_each_other(store, ws):
    other = store.workspace_id(f"other-{ws}")
    store.write_users(
        ws, [UserRecord("u1", {}, {"plan": "free"})], 10, new_types={"plan": AttrType.STRING}
    )
    store.write_events(ws, [EventRecord("u1", "login", 5.0)], 10)
    rule = parse_rule({"attr": "plan", "eq": "free"})
    assert store.load_users(other, ["u1"]) == {}
    assert store.count_audience(other, rule, 100) == 0
    assert store.count_events(other) == 0
    assert store.count_audience(ws, rule, 100) == 1


def test_audience_pages_by_keyset(store, ws):
    ids = [f"u{i:02d}" for i in range(10)]
    store.write_users(
        ws,
        [UserRecord(i, {}, {"n": k}) for k, i in enumerate(ids)],
        10,
        new_types={"n": AttrType.NUMBER},
    )
    rule = parse_rule({"attr": "n", "gte": 2})
    pages, after = [], None
    while page := store.select_audience(ws, rule, 100, after_user_id=after, limit=3):
        pages.append(page)
        after = page[-1]
    assert pages == [ids[2:5], ids[5:8], ids[8:10]]
    assert store.count_audience(ws, rule, 100) == 8


def test_event_counts_for_a_batch_of_users(store, ws):
    store.write_events(
        ws,
        [EventRecord("u1", "login", float(t)) for t in (10, 20, 30)]
        + [EventRecord("u2", "login", 5.0), EventRecord("u2", "other", 25.0)],
        40,
    )
    recent = parse_rule({"event": "login", "within": "15s"})
    ever = parse_rule({"event": "login", "count": {"gte": 2}})
    conditions = [*recent.event_conditions(), *ever.event_conditions()]
    facts = store.event_counts(ws, ["u1", "u2", "u3"], conditions, now=30.0)
    assert facts == {
        "u1": {conditions[0].key: 2, conditions[1].key: 3},
        "u2": {conditions[1].key: 1},
    }


def test_sqlite_writers_take_turns_on_a_lock_file_beside_the_database(store, database_url):
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL writers wait on row locks, not on the database's")
    turn = f"{store.engine.url.database}-writer"
    with store.writing(), open(turn, "ab") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another writer would wait here
    with open(turn, "ab") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the write committed


def test_a_sqlite_writer_that_gives_way_goes_after_the_writers_waiting(store, database_url):
    """A slow lane's worker (`writes_give_way`) waiting for the write lock lets a writer that
    came after it go first; it writes once that one is done."""
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL writers wait on row locks, not on the database's")
    turn = f"{store.engine.url.database}-writer"
    slow, fast = (open_store(database_url, migrate=False) for _ in range(2))
    slow.writes_give_way = True
    order: list[str] = []

    def write(writer, name):
        with writer.writing():
            order.append(name)

    threads = [
        threading.Thread(target=write, args=pair) for pair in ((slow, "slow"), (fast, "fast"))
    ]
    with store.writing():
        for waiting, thread in enumerate(threads, start=1):
            thread.start()
            wait_for(lambda n=waiting: _blocked_on(turn) == n, f"{waiting} writers waiting")
    for thread in threads:
        thread.join(timeout=30)
    slow.close()
    fast.close()
    assert order == ["fast", "slow"]


def _blocked_on(path: str) -> int:
    """How many flock requests wait on the file at `path` (Linux: /proc/locks)."""
    inode = f":{os.stat(path).st_ino} "
    with open("/proc/locks") as locks:
        return sum(1 for line in locks if " -> " in line and inode in line)


def test_memberships_are_stored_by_key_on_sqlite_and_the_migration_goes_both_ways(store):
    if store.dialect != "sqlite":
        pytest.skip("WITHOUT ROWID is SQLite's; PostgreSQL's tables are heaps")

    def layout() -> str:
        with store.engine.connect() as conn:
            sql = "SELECT sql FROM sqlite_master WHERE name = 'memberships'"
            return str(conn.exec_driver_sql(sql).scalar_one())

    assert "WITHOUT ROWID" in layout()
    with store.engine.connect() as conn, conn.begin():
        command.downgrade(migrate._config(conn), "0003")
    assert "WITHOUT ROWID" not in layout()
    migrate.upgrade(store.engine)
    assert "WITHOUT ROWID" in layout()


def test_memberships_and_messages_go_in_bulk_as_given(store, ws):
    """The batch's writes (one statement a kind on PostgreSQL): times given as int or float,
    nulls, a member given twice (the last counts), a member written again (its version
    moves), a message whose key exists (kept once)."""
    from sqlalchemy import select

    from drumbeat.engine.member import Member, OutMessage, State
    from drumbeat.store.schema import outbox

    first = Member("a", State.ACTIVE, "steps[1]", 1, 100, 100.5, next_due_at=None)
    again = Member("a", State.ACTIVE, "steps[2]", 1, 100, 200, next_due_at=300.25)
    other = Member("b", State.COMPLETED, "steps[0]", 2, 100.0, 100, exit_reason="goal")
    sent = [OutMessage(f"k/{u}", "s", u, 1, "email", {"body": u}, 100) for u in ("a", "b")]
    with store.writing() as conn:
        store.write_members(conn, ws, "c", [first, other, again])
        assert store.insert_messages(conn, ws, "c", sent) == 2
    with store.writing() as conn:
        store.write_members(conn, ws, "c", [other])
        assert store.insert_messages(conn, ws, "c", [*sent, sent[0]]) == 0
    members = {m.user_id: m for m in store.members(ws, "c")}
    assert members == {"a": again, "b": other}
    o = outbox.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(o.user_id, o.payload, o.created_at).where(o.workspace_id == ws))
        assert sorted(tuple(row) for row in rows) == [
            ("a", {"body": "a"}, 100.0),
            ("b", {"body": "b"}, 100.0),
        ]


def test_a_setting_read_on_a_connection_the_server_ended_is_read_again(store, ws, database_url):
    """The server ends the backend of a connection just taken from the pool (after its
    pre-ping: a restart, an administrator): the driver's error reaches `retrying` as a lost
    connection, the connection leaves the pool, and the read is made again on a new one (it
    escaped as psycopg's own OperationalError, which `retrying` did not know)."""
    if store.dialect != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's; SQLite has no connection to lose")
    store.set_setting(ws, "greeting", "hello")
    with backend_ended_at_next_checkout(store, database_url) as ended:
        read = store.retrying(lambda: store.get_setting(ws, "greeting"), "reading a setting")
    assert ended and read == "hello"


def test_advance_s_wait_for_retries_reads_again_on_a_connection_the_server_ended(world):
    """The end of `advance` (`Dispatcher.settle`) looks for retries due through `retrying`:
    a connection the server ended there failed the whole command."""
    if world.store.dialect != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's; SQLite has no connection to lose")
    with backend_ended_at_next_checkout(world.store, world.config.database_url) as ended:
        report = world.runner.dispatcher.settle(world.now())
    assert ended and not report.counts


@contextmanager
def backend_ended_at_next_checkout(store, database_url):
    """The backend of the next connection taken from `store`'s pool is ended by the server,
    once, after the pool's pre-ping: what it does at a restart between the ping and the
    statement. Yields the ended backends' pids."""
    import psycopg
    from sqlalchemy import event

    ended: list[int] = []

    def end_once(dbapi_connection, _record, _proxy):
        if not ended:
            ended.append(dbapi_connection.info.backend_pid)
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", [ended[0]])

    event.listen(store.engine.pool, "checkout", end_once)
    try:
        yield ended
    finally:
        event.remove(store.engine.pool, "checkout", end_once)
