"""Importing files: all-or-nothing by default, --skip-invalid with a rejects file, idempotent."""

from __future__ import annotations

import orjson
import pytest

from drumbeat.errors import InvalidInput
from drumbeat.ingest.importer import import_file

pytestmark = pytest.mark.usefixtures("check_processes")


def write_jsonl(path, rows):
    path.write_text(
        "".join(orjson.dumps(r).decode() + "\n" if isinstance(r, dict) else r + "\n" for r in rows)
    )
    return path


GOOD = [
    {
        "user_id": "u1",
        "traits": {
            "email": "a@b.co",
            "plan": "free",
            "seats": 3,
            "created_at": "2026-01-02T03:04:05Z",
        },
    },
    {"userId": "u2", "traits": {"plan": "paid", "timezone": "Europe/Paris", "beta": True}},
]


def test_bad_lines_are_all_listed_and_nothing_is_written(client, tmp_path):
    path = write_jsonl(
        tmp_path / "users.jsonl",
        [
            *GOOD,
            {"user_id": "u3", "traits": {"seats": "three"}},
            "{not json",
            {"traits": {"plan": "free"}},
            {"user_id": "u4", "traits": {"timezone": "Mars/Olympus"}},
        ],
    )
    with pytest.raises(InvalidInput) as caught:
        import_file(client.store, client.ws, path, "users", now=client.clock())
    where = [p.where for p in caught.value.problems]
    assert where == ["line 3: traits.seats", "line 4", "line 5: user_id", "line 6: traits.timezone"]
    assert "user 'u3', attribute 'seats': expected number, got string" in str(caught.value)
    assert client.store.count_users(client.ws) == 0
    assert client.store.attribute_types(client.ws) == {}


def test_a_file_that_disagrees_with_itself_is_refused(client, tmp_path):
    path = write_jsonl(
        tmp_path / "users.jsonl",
        [
            {"user_id": "u1", "traits": {"plan": "free"}},
            {"user_id": "u2", "traits": {"plan": 7}},
        ],
    )
    with pytest.raises(InvalidInput, match=r"line 2: traits\.plan"):
        import_file(client.store, client.ws, path, "users", now=client.clock())


def test_skip_invalid_imports_good_lines_and_writes_rejects(client, tmp_path):
    bad = {"user_id": "u3", "traits": {"seats": "three"}}
    path = write_jsonl(tmp_path / "users.jsonl", [GOOD[0], bad, GOOD[1]])
    report = import_file(
        client.store, client.ws, path, "users", now=client.clock(), skip_invalid=True
    )
    assert (report.imported, report.rejected) == (2, 1)
    assert orjson.loads(report.rejects_path.read_text()) == bad
    assert sorted(client.users(["u1", "u2", "u3"])) == ["u1", "u2"]


def test_reimporting_users_is_idempotent(client, tmp_path, clock):
    path = write_jsonl(tmp_path / "users.jsonl", GOOD)
    import_file(client.store, client.ws, path, "users", now=clock())
    before = client.users(["u1", "u2"])
    clock.advance(60)
    report = import_file(client.store, client.ws, path, "users", now=clock())
    assert report.written == 0
    assert client.users(["u1", "u2"]) == before
    assert before["u1"].created_at == 1767323045.0
    assert before["u2"].attributes == {"plan": "paid", "beta": True}


def test_csv_users_are_typed_by_attribute_types(client, tmp_path):
    client.declare_attribute("zip", "string")
    path = tmp_path / "users.csv"
    path.write_text(
        "user_id,plan,seats,zip,beta,created_at\n"
        "u1,free,3,02134,true,2026-01-02T03:04:05Z\n"
        "u2,paid,,75001,false,\n"
    )
    import_file(client.store, client.ws, path, "users", now=client.clock())
    users = client.users(["u1", "u2"])
    assert users["u1"].attributes == {"plan": "free", "seats": 3, "zip": "02134", "beta": True}
    assert users["u2"].attributes == {"plan": "paid", "zip": "75001", "beta": False}
    assert users["u1"].created_at == 1767323045.0


def test_events_import_is_idempotent_by_message_id(client, tmp_path):
    path = write_jsonl(
        tmp_path / "events.jsonl",
        [
            {
                "user_id": "u1",
                "event": "login",
                "timestamp": "2026-01-02T03:04:05+01:00",
                "messageId": "m1",
            },
            {
                "user_id": "u1",
                "event": "viewed_pricing",
                "properties": {"plan": "pro"},
                "message_id": "m2",
            },
        ],
    )
    assert import_file(client.store, client.ws, path, "events", now=client.clock()).written == 2
    assert import_file(client.store, client.ws, path, "events", now=client.clock()).written == 0
    assert client.store.count_events(client.ws) == 2


def test_csv_events_put_extra_columns_in_properties(client, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,event,timestamp,amount,path\nu1,upgraded,1767323045,49.5,/billing\n")
    import_file(client.store, client.ws, path, "events", now=client.clock())
    assert client.store.count_events(client.ws) == 1


def test_a_bad_event_line_names_its_field(client, tmp_path):
    path = write_jsonl(
        tmp_path / "events.jsonl",
        [
            {"user_id": "u1", "event": "login", "timestamp": "2026-01-02 03:04"},
        ],
    )
    with pytest.raises(InvalidInput, match=r"line 1: timestamp"):
        import_file(client.store, client.ws, path, "events", now=client.clock())
