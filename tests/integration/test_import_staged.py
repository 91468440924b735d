"""Users imports go through a stage (checked once, staged by a writer thread, then upserted
batch by batch): the result is what `write_users` gives for the same calls, on both backends."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest

from drumbeat.client import Drumbeat
from drumbeat.errors import InvalidInput
from drumbeat.ingest import user_import
from drumbeat.ingest.importer import import_file
from drumbeat.model.attributes import AttrType
from drumbeat.store.core import chunks

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


@pytest.mark.parametrize("stage_rows", [1, 4], ids=["staged-as-they-come", "staged-at-cuts"])
def test_a_staged_import_ends_as_write_users_ends(pair, tmp_path, clock, monkeypatch, stage_rows):
    monkeypatch.setattr(user_import, "STAGE_ROWS", stage_rows)
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


def test_a_bad_line_anywhere_stages_nothing_and_writes_nothing(client, tmp_path, monkeypatch):
    monkeypatch.setattr(user_import, "STAGE_ROWS", 1)
    staged: list[int] = []
    real = user_import.open_user_import

    def counting(*args):
        stage = real(*args)
        inner = stage.stage
        stage.stage = lambda lane, rows, again: (staged.append(len(rows)), inner(lane, rows, again))
        return stage

    monkeypatch.setattr(user_import, "open_user_import", counting)
    calls = [*CALLS, {"user_id": "u9", "traits": {"seats": "many"}}, *CALLS]
    path = write_jsonl(tmp_path / "users.jsonl", calls)
    with pytest.raises(InvalidInput, match=r"line 9: traits\.seats"):
        import_file(client.store, client.ws, path, "users", now=client.clock())
    assert client.store.count_users(client.ws) == 0
    assert client.store.attribute_types(client.ws) == {}
    assert sum(staged) <= len(CALLS)  # staging stops at the first bad line


def test_a_failing_stage_fails_the_import_before_anything_is_written(client, tmp_path, monkeypatch):
    def broken(*args):
        stage = real(*args)

        def fail(lane, rows, again):
            raise OSError("no space left on device")

        stage.stage = fail
        return stage

    real = user_import.open_user_import
    monkeypatch.setattr(user_import, "open_user_import", broken)
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    with pytest.raises(OSError, match="no space left"):
        import_file(client.store, client.ws, path, "users", now=client.clock())
    monkeypatch.setattr(user_import, "open_user_import", real)
    assert client.store.count_users(client.ws) == 0
    # the stage was dropped: the next import on the same store works
    assert import_file(client.store, client.ws, path, "users", now=client.clock()).written == 5


def test_the_stage_is_removed_after_the_import(client, tmp_path):
    before = set(Path(tempfile.gettempdir()).glob("drumbeat-import-*"))
    path = write_jsonl(tmp_path / "users.jsonl", CALLS)
    import_file(client.store, client.ws, path, "users", now=client.clock())
    with pytest.raises(InvalidInput):
        import_file(client.store, client.ws, write_jsonl(path, ["x"]), "users", now=0)
    assert set(Path(tempfile.gettempdir()).glob("drumbeat-import-*")) == before


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
