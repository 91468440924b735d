"""Users imports are written while the file is checked (each lane's batches by a thread of its
own, in a transaction that commits only once the whole file is known good): the result is what
`write_users` gives for the same calls, on both backends, and nothing shows before the end."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from drumbeat.client import Drumbeat
from drumbeat.errors import InvalidInput
from drumbeat.ingest import batches, user_import
from drumbeat.ingest.checking import share_of
from drumbeat.ingest.importer import ImportReport, Rejects, import_file
from drumbeat.model.attributes import AttrType
from drumbeat.model.records import UserRecord
from drumbeat.store import migrate, postgres
from drumbeat.store.core import chunks

pytestmark = pytest.mark.usefixtures("check_processes")

CALLS = [  # in batches of 3
    {"user_id": "u1", "traits": {"email": "a@b.co", "plan": "free", "seats": 3, "beta": False}},
    {"user_id": "u2", "traits": {"timezone": "Europe/Paris", "unsubscribed": True}},
    {"user_id": "u1", "traits": {"seats": None, "timezone": "UTC"}},  # u1 again, same batch
    {"user_id": "u3", "traits": {"created_at": "2026-01-02T03:04:05Z", "plan": "paid"}},
    {"user_id": "u4", "traits": {"trial_ends_at": "2026-01-09T00:00:00+01:00", "seats": 1.5}},
    {"user_id": "u2", "traits": {"unsubscribed": False, "plan": None}},  # u2 again, later
    {"user_id": "u5", "traits": {}},
    {"user_id": "u1", "traits": {"email": "c@d.co", "beta": None, "last_seen_at": 1767323045}},
]
FIELDS = ("email", "timezone", "unsubscribed", "created_at", "last_seen_at", "attributes")


def write_jsonl(path: Path, calls: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(call) + b"\n" for call in calls))
    return path


def state(db: Drumbeat, ids: list[str]) -> dict[str, tuple[object, ...]]:
    users = db.users(ids)
    return {
        i: (*(getattr(u, f) for f in FIELDS), u.version, u.updated_at) for i, u in users.items()
    }


@pytest.fixture
def pair(database_url, workspace_name, clock):
    """Two workspaces of one store, batches of 3."""
    dbs = [
        Drumbeat(database_url, workspace=f"{workspace_name}-{side}", batch_size=3, clock=clock)
        for side in ("file", "api")
    ]
    yield dbs
    for db in dbs:
        db.close()


def test_an_import_ends_as_write_users_ends(pair, tmp_path, clock, monkeypatch):
    monkeypatch.setattr(user_import.UsersImport, "route", lambda user_id: 0)  # one lane
    by_file, by_api = pair
    ids = ["u1", "u2", "u3", "u4", "u5"]
    seen: list[int] = []
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    report = import_file(
        by_file.store, by_file.ws, path, "users", now=clock(), progress=seen.append
    )
    for part in chunks(CALLS, 3):  # as the import's batches go in
        by_api.identify_many(part)
    assert (report.imported, report.written) == (8, 2 + 3 + 2)
    assert state(by_file, ids) == state(by_api, ids)
    assert state(by_file, ids)["u1"][:6] == (
        "c@d.co",
        "UTC",
        False,
        None,
        1767323045.0,
        {"plan": "free"},
    )
    assert by_file.store.attribute_types(by_file.ws) == {
        "plan": AttrType.STRING,
        "seats": AttrType.NUMBER,
        "beta": AttrType.BOOLEAN,
        "trial_ends_at": AttrType.TIMESTAMP,
    }
    assert sum(seen) == path.stat().st_size

    clock.advance(60)  # again: u1 and u2 go back and forth as before, the others stay
    again = import_file(by_file.store, by_file.ws, path, "users", now=clock())
    assert again.written == sum(by_api.identify_many(part) for part in chunks(CALLS, 3)) == 4
    assert state(by_file, ids) == state(by_api, ids)


def test_users_new_to_the_workspace_are_inserted_until_one_is_there(
    pair, tmp_path, clock, monkeypatch
):
    """PostgreSQL inserts an import's batches into a workspace with no users as new users
    (no ON CONFLICT) until a batch meets a user there already (u2, in the second batch):
    that batch and the lane's next ones are upserted, ending as `write_users` ends."""
    by_file, by_api = pair
    if by_file.store.dialect != "postgresql":
        pytest.skip("SQLite upserts every batch")
    monkeypatch.setattr(user_import.UsersImport, "route", lambda user_id: 0)  # one lane
    tried: list[int | None] = []  # (with two check processes, a lane a process)
    real = postgres._inserted

    def inserted(*args: Any) -> int | None:
        tried.append(real(*args))
        return tried[-1]

    monkeypatch.setattr(postgres, "_inserted", inserted)
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    report = import_file(by_file.store, by_file.ws, path, "users", now=clock())
    assert tried.count(None) == 1 and sum(n or 0 for n in tried) >= 2  # u2's lane: once
    for part in chunks(CALLS, 3):
        by_api.identify_many(part)
    ids = ["u1", "u2", "u3", "u4", "u5"]
    assert report.written == 2 + 3 + 2 and state(by_file, ids) == state(by_api, ids)


def test_lanes_apply_each_users_calls_in_order(pair, tmp_path, clock, monkeypatch):
    """PostgreSQL writes two lanes side by side; a user's calls all go to one lane, so they
    land in file order. Batches are cut per lane: a user named in several batches may be
    written fewer times than in batches cut in file order, never more."""
    monkeypatch.setattr(user_import.UsersImport, "route", lambda user_id: int(user_id[1:]))
    by_file, by_api = pair
    ids = ["u1", "u2", "u3", "u4", "u5"]
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    report = import_file(by_file.store, by_file.ws, path, "users", now=clock())
    by_api.identify_many(CALLS)
    assert 5 <= report.written <= 2 + 3 + 2
    files, apis = state(by_file, ids), state(by_api, ids)
    assert {i: s[:6] for i, s in files.items()} == {i: s[:6] for i, s in apis.items()}
    assert all(files[i][6] <= sum(c["user_id"] == i for c in CALLS) for i in ids)


def test_reimporting_changes_nothing_whichever_way_users_came(pair, tmp_path, clock):
    by_file, by_api = pair
    ids = ["u1", "u2", "u3", "u4", "u5"]
    once = list({call["user_id"]: call for call in CALLS}.values())  # each user once
    path = write_jsonl(tmp_path / "users.jsonl", once)
    assert import_file(by_file.store, by_file.ws, path, "users", now=clock()).written == 5
    assert by_api.identify_many(once) == 5
    clock.advance(60)
    assert by_file.identify_many(once) == 0
    assert import_file(by_api.store, by_api.ws, path, "users", now=clock()).written == 0
    assert import_file(by_file.store, by_file.ws, path, "users", now=clock()).written == 0
    assert state(by_file, ids) == state(by_api, ids)


def counting_writes(monkeypatch, fail_at: int | None = None) -> list[int]:
    """The sizes of the batches the import writes (the `fail_at`-th write fails)."""
    written: list[int] = []
    real = batches.UserImport.write

    def write(self, lane, rows):
        if len(written) == fail_at:
            raise OSError("no space left on device")
        written.append(len(rows))
        return real(self, lane, rows)

    monkeypatch.setattr(batches.UserImport, "write", write)
    return written


def test_a_bad_line_anywhere_stops_the_writes_and_rolls_back_the_rest(
    client, tmp_path, monkeypatch, check_processes
):
    written = counting_writes(monkeypatch)
    client.store.batch_size = 2
    calls = [*CALLS, {"user_id": "u9", "traits": {"seats": "many", "zip": "75001"}}, *CALLS]
    path = write_jsonl(tmp_path / "users.jsonl", calls)
    with pytest.raises(InvalidInput, match=r"line 9: traits\.seats"):
        import_file(client.store, client.ws, path, "users", now=client.clock())
    if check_processes == 1:  # written up to the first bad line; with two, up to when the
        assert 0 < sum(written) <= len(CALLS)  # other process's batches meet its news
    assert sum(written) < len(calls)
    assert client.store.count_users(client.ws) == 0
    assert client.store.attribute_types(client.ws) == {}


def test_nothing_shows_before_the_whole_file_is_known_good(client, tmp_path, monkeypatch):
    seen: list[int] = []
    real = batches.UserImport.write

    def write(self, lane, rows):
        result = real(self, lane, rows)
        seen.append(client.store.count_users(client.ws))  # another connection looks
        return result

    monkeypatch.setattr(batches.UserImport, "write", write)
    client.store.batch_size = 2
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    report = import_file(client.store, client.ws, path, "users", now=client.clock())
    assert len(seen) >= 3 and set(seen) == {0}
    assert report.imported == len(CALLS)
    assert client.store.count_users(client.ws) == 5


def test_a_failing_write_fails_the_import_and_leaves_nothing(client, tmp_path, monkeypatch):
    written = counting_writes(monkeypatch, fail_at=1)
    monkeypatch.setattr(user_import.UsersImport, "route", lambda user_id: 0)  # one lane
    client.store.batch_size = 2
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    with pytest.raises(OSError, match="no space left"):
        import_file(client.store, client.ws, path, "users", now=client.clock())
    assert written == [2]  # the first batch was written, then rolled back
    assert client.store.count_users(client.ws) == 0
    assert client.store.engine.pool.checkedout() == 0
    monkeypatch.undo()
    # no lock or transaction left behind: the next writes go through
    assert client.identify_many(CALLS[:1]) == 1
    assert import_file(client.store, client.ws, path, "users", now=client.clock()).imported == 8
    assert client.store.count_users(client.ws) == 5


def test_writes_to_a_workspace_that_does_not_exist_are_refused(client, tmp_path):
    with pytest.raises(InvalidInput, match="no workspace"):
        client.store.write_users(10**6, [UserRecord("u1", {}, {"plan": "free"})], 0)
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    with pytest.raises(InvalidInput, match="no workspace"):
        import_file(client.store, 10**6, path, "users", now=client.clock())
    assert client.store.count_users(10**6) == 0


def test_many_users_removing_attributes_in_one_batch(pair, tmp_path, clock):
    by_file, by_api = pair
    by_file.store.batch_size = by_api.store.batch_size = 500
    first = [{"user_id": f"u{n}", "traits": {"plan": "free", "seats": n}} for n in range(400)]
    then = [
        {"user_id": f"u{n}", "traits": {"plan": None} if n % 2 else {"seats": None, "x": n}}
        for n in range(0, 400, 3)
    ]
    for db in pair:
        db.identify_many(first)
    path = write_jsonl(tmp_path / "users.jsonl", then)
    report = import_file(by_file.store, by_file.ws, path, "users", now=clock())
    assert report.written == by_api.identify_many(then) == len(then)
    ids = [f"u{n}" for n in range(400)]
    assert state(by_file, ids) == state(by_api, ids)


def test_the_workspace_key_goes_without_losing_an_index_of_users(tmp_path):
    """Revision 0003 rebuilds users on SQLite: the expression indexes store/indexes.py keeps
    there are made again."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO workspaces (id, name, created_at) VALUES (7, 'w', 0)"))
        conn.execute(
            sa.text(
                "INSERT INTO users (workspace_id, user_id, unsubscribed, attributes, updated_at,"
                " version) VALUES (7, 'u1', 0, '{\"plan\": \"free\"}', 0, 1)"
            )
        )
        conn.execute(
            sa.text(
                "CREATE INDEX ix_users_attr_plan ON users"
                " (workspace_id, json_extract(attributes, '$.\"plan\"'))"
            )
        )
    migrate.upgrade(engine, "0006")  # 0007 drops the time indexes on SQLite
    with engine.connect() as conn:
        assert sa.inspect(conn).get_foreign_keys("users") == []
        names = {name for (name,) in conn.execute(sa.text("SELECT name FROM sqlite_master"))}
        assert {"ix_users_attr_plan", "ix_users_workspace_id_created_at"} <= names
        assert conn.execute(sa.text("SELECT user_id FROM users")).scalars().all() == ["u1"]
    engine.dispose()


def test_skip_invalid_stages_the_good_lines_and_keeps_bad_ones_as_they_were(client, tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(b"user_id,plan,seats\r\nu1,free,3\r\nu2,paid,three\r\n,free,1\r\nu3,paid,\r\n")
    report = import_file(
        client.store, client.ws, path, "users", now=client.clock(), skip_invalid=True
    )
    assert (report.imported, report.rejected, report.written) == (2, 2, 2)
    assert report.rejects_path.read_bytes() == b"user_id,plan,seats\r\nu2,paid,three\r\n,free,1\r\n"
    assert [p.where for p in report.problems] == ["line 3: traits.seats", "line 4: user_id"]
    assert client.users(["u3"])["u3"].attributes == {"plan": "paid"}


def test_check_processes_that_fix_a_type_differently_hand_the_file_back(client, tmp_path):
    """Each check process fixes the types its own share of users shows first; when two
    disagree, the file is checked again in one process, which names the line in file order."""
    ids = [f"u{n}" for n in range(40)]
    first, second = (next(i for i in ids if share_of({"user_id": i}, 2) == s) for s in (0, 1))
    calls = [
        {"user_id": first, "traits": {"seats": "many"}},  # fixes seats as a string
        {"user_id": second, "traits": {"seats": 3}},  # its process fixes a number
    ]
    path = write_jsonl(tmp_path / "users.jsonl", calls)
    users = user_import.UsersImport(client.store, client.ws, "jsonl", client.clock(), False)
    users.parallel_from, users.processes = 0, 2
    report = ImportReport(path, "users")
    with pytest.raises(InvalidInput, match=r"line 2: traits\.seats.*expected string, got number"):
        users.run(path, report, Rejects(tmp_path / "rejects", "jsonl", path), None)
    assert client.store.count_users(client.ws) == 0


def test_writers_queue_behind_an_import_instead_of_timing_out(
    client, database_url, workspace_name, tmp_path, monkeypatch
):
    """A SQLite import holds the write lock until it ends: another writer waits its turn
    for as long as that takes, rather than failing after SQLite's busy timeout."""
    if client.store.dialect != "sqlite":
        pytest.skip("PostgreSQL writers of other users do not wait for an import")
    paused, go = threading.Event(), threading.Event()
    real = batches.UserImport.write

    def write(self, lane, rows):
        written = real(self, lane, rows)
        paused.set()
        assert go.wait(30)
        return written

    monkeypatch.setattr(batches.UserImport, "write", write)
    other = Drumbeat(database_url, workspace=f"{workspace_name}-other", clock=client.clock)
    sa.event.listen(  # SQLite alone would give up after 50 ms
        other.store.engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=50")
    )
    other.store.engine.dispose()
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    importing = threading.Thread(
        target=import_file, args=(client.store, client.ws, path, "users"), kwargs={"now": 0.0}
    )
    errors: list[BaseException] = []

    def identify() -> None:
        try:
            other.identify("w1", {"plan": "free"})
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=identify)
    try:
        importing.start()
        assert paused.wait(30)  # the import holds the write lock
        writer.start()
        writer.join(0.5)  # well past the busy timeout
        assert writer.is_alive() and errors == []
    finally:
        go.set()
        importing.join(30)
        writer.join(30)
        other.close()
    assert errors == [] and client.store.count_users(client.ws) == 5
    assert other.store.count_users(other.ws) == 1
