"""What an import makes of a file's bytes: a line that is not UTF-8 is one bad line, a
byte-order mark is read past, and a NUL character (which PostgreSQL keeps in no text or JSON)
is refused on both stores, by the import and by the Python API alike."""

from __future__ import annotations

import orjson
import pytest

from drumbeat.errors import InvalidInput
from drumbeat.ingest.importer import import_file

NOT_UTF8 = b"fr\xffee"  # \xff starts no UTF-8 character
BOM = b"\xef\xbb\xbf"

# (kind, file name, its bytes with line 2 not UTF-8)
FILES = [
    ("users", "users.jsonl", b'{"user_id":"u1"}\n{"user_id":"u2","traits":{"plan":"%s"}}\n'),
    ("users", "users.csv", b"user_id,plan\nu2,%s\nu1,free\n"),
    (
        "events",
        "events.jsonl",
        b'{"user_id":"u1","event":"login"}\n{"user_id":"u2","event":"%s"}\n',
    ),
    ("events", "events.csv", b"user_id,event\nu2,%s\nu1,login\n"),
]


def count(client, kind: str) -> int:
    store = client.store
    return store.count_users(client.ws) if kind == "users" else store.count_events(client.ws)


@pytest.fixture(params=FILES, ids=[name for _kind, name, _body in FILES])
def bad_file(request, tmp_path, check_processes):
    """A file whose line 2 is not UTF-8 (a users file checked here or by check processes)."""
    kind, name, body = request.param
    path = tmp_path / name
    path.write_bytes(body.replace(b"%s", NOT_UTF8))
    return kind, path


def test_a_line_that_is_not_utf8_is_named_and_nothing_is_written(client, bad_file):
    kind, path = bad_file
    with pytest.raises(InvalidInput) as caught:
        import_file(client.store, client.ws, path, kind, now=client.clock())
    assert [str(p) for p in caught.value.problems] == ["line 2: not valid UTF-8"]
    assert count(client, kind) == 0
    assert not path.with_name(path.name + ".rejects").exists()


def test_skip_invalid_keeps_a_line_that_is_not_utf8_as_it_was(client, bad_file):
    kind, path = bad_file
    report = import_file(client.store, client.ws, path, kind, now=client.clock(), skip_invalid=True)
    assert (report.imported, report.rejected) == (1, 1)
    assert [str(p) for p in report.problems] == ["line 2: not valid UTF-8"]
    bad_line = path.read_bytes().splitlines(keepends=True)[1]
    header = b"user_id,plan\n" if path.name == "users.csv" else b"user_id,event\n"
    expected = header + bad_line if path.suffix == ".csv" else bad_line
    assert report.rejects_path.read_bytes() == expected
    assert count(client, kind) == 1
    if kind == "users":
        assert list(client.users(["u1", "u2"])) == ["u1"]


def test_a_file_that_opens_with_a_byte_order_mark_is_read(client, tmp_path, check_processes):
    users = tmp_path / "users.csv"
    users.write_bytes(BOM + b"user_id,plan\r\nu1,free\r\n")
    import_file(client.store, client.ws, users, "users", now=client.clock())
    assert client.users(["u1"])["u1"].attributes == {"plan": "free"}
    users = tmp_path / "users.jsonl"
    users.write_bytes(BOM + b'{"user_id":"u2","traits":{"plan":"paid"}}\n')
    import_file(client.store, client.ws, users, "users", now=client.clock())
    assert client.users(["u2"])["u2"].attributes == {"plan": "paid"}
    events = tmp_path / "events.jsonl"
    events.write_bytes(BOM + b'{"user_id":"u1","event":"login"}\n')
    import_file(client.store, client.ws, events, "events", now=client.clock())
    assert client.store.count_events(client.ws) == 1


# ---- NUL ---------------------------------------------------------------------------------------

USER_NULS = [
    ({"user_id": "u\x002", "traits": {"plan": "free"}}, "user_id"),
    ({"user_id": "u2", "traits": {"plan": "fr\x00ee"}}, "traits.plan"),
    ({"user_id": "u2", "traits": {"pl\x00an": "free"}}, "traits.pl\\u0000an"),
    ({"user_id": "u2", "traits": {"email": "a@b\x00.co"}}, "traits.email"),
]
EVENT_NULS = [
    ({"user_id": "u2", "event": "log\x00in"}, "event"),
    ({"user_id": "u2", "event": "login", "properties": {"p\x00": 1}}, "properties.p\\u0000"),
    (
        {"user_id": "u2", "event": "login", "properties": {"a": {"b": ["x", "y\x00"]}}},
        "properties.a.b[1]",
    ),
    ({"user_id": "u2", "event": "login", "message_id": "m\x00"}, "message_id"),
]
NUL_PROBLEM = "contains a NUL character (\\u0000): not allowed"


@pytest.mark.parametrize(("call", "field"), USER_NULS, ids=[f for _c, f in USER_NULS])
def test_a_nul_in_a_users_file_is_refused_on_both_stores(
    client, tmp_path, check_processes, call, field
):
    path = tmp_path / "users.jsonl"
    path.write_bytes(orjson.dumps({"user_id": "u1", "traits": {"plan": "free"}}) + b"\n")
    path.write_bytes(path.read_bytes() + orjson.dumps(call) + b"\n")
    with pytest.raises(InvalidInput) as caught:
        import_file(client.store, client.ws, path, "users", now=client.clock())
    assert [p.where for p in caught.value.problems] == [f"line 2: {field}"]
    assert NUL_PROBLEM in str(caught.value)
    assert client.store.count_users(client.ws) == 0
    assert client.store.attribute_types(client.ws) == {}


@pytest.mark.parametrize(("call", "field"), EVENT_NULS, ids=[f for _c, f in EVENT_NULS])
def test_a_nul_in_an_events_file_is_refused_on_both_stores(client, tmp_path, call, field):
    path = tmp_path / "events.jsonl"
    good = orjson.dumps({"user_id": "u1", "event": "login"})
    path.write_bytes(good + b"\n" + orjson.dumps(call) + b"\n")
    with pytest.raises(InvalidInput) as caught:
        import_file(client.store, client.ws, path, "events", now=client.clock())
    assert [p.where for p in caught.value.problems] == [f"line 2: {field}"]
    assert client.store.count_events(client.ws) == 0


def test_a_nul_in_a_csv_cell_or_column_is_refused(client, tmp_path, check_processes):
    users = tmp_path / "users.csv"
    users.write_bytes(b"user_id,plan,no\x00te\nu1,free,\nu2,fr\x00ee,\nu3,paid,x\n")
    report = import_file(
        client.store, client.ws, users, "users", now=client.clock(), skip_invalid=True
    )
    assert [str(p) for p in report.problems] == [
        f"line 3: traits.plan: {NUL_PROBLEM}",
        f"line 4: traits.no\\u0000te: the name {NUL_PROBLEM}",
    ]
    events = tmp_path / "events.csv"
    events.write_bytes(b"user_id,event,path\nu1,login,/a\x00b\n")
    with pytest.raises(InvalidInput, match=r"line 2: properties\.path: contains a NUL"):
        import_file(client.store, client.ws, events, "events", now=client.clock())
    assert client.store.count_events(client.ws) == 0
    assert list(client.users(["u1", "u2"])) == ["u1"]


def test_a_nul_is_refused_by_identify_and_track_on_both_stores(client):
    with pytest.raises(InvalidInput, match=r"\[0\]\.traits\.plan: contains a NUL"):
        client.identify("u1", {"plan": "fr\x00ee"})
    with pytest.raises(InvalidInput, match=r"\[0\]\.user_id: contains a NUL"):
        client.identify("u\x001", {"plan": "free"})
    with pytest.raises(InvalidInput, match=r"\[0\]\.properties\.a\[0\]\.b\\u0000: the name"):
        client.track("u1", "login", {"a": [{"b\x00": 1}]})
    with pytest.raises(InvalidInput, match=r"\[0\]\.event: contains a NUL"):
        client.track("u1", "log\x00in")
    with pytest.raises(InvalidInput, match=r"pl\\u0000an: the name contains a NUL"):
        client.declare_attribute("pl\x00an", "string")
    assert client.store.count_users(client.ws) == 0
    assert client.store.count_events(client.ws) == 0
    assert client.store.attribute_types(client.ws) == {}
