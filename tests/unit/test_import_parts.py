"""The parts of the users import: the fast path agrees with the full check, batches are cut
and merged as `write_users` merges, the reader cuts lines as text mode does, the writer
threads hand errors back."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drumbeat.errors import InvalidInput
from drumbeat.ingest.checking import BatchCutter
from drumbeat.ingest.files import read_calls, read_lines
from drumbeat.ingest.rows import row_of
from drumbeat.ingest.staging import WIDTH, Staged, stage
from drumbeat.ingest.validate import Validator
from drumbeat.ingest.writer import BackgroundWriter
from drumbeat.model.attributes import AttrType, TypeMismatch, _parse_timestamp, parse_timestamp
from drumbeat.store.base import merge_user_records
from drumbeat.store.names import names_json, written_names

# ---- the fast path of identify calls ---------------------------------------------------------


def _mostly(valid: st.SearchStrategy[object], other: st.SearchStrategy[object]):
    """Valid values nine times in ten, so that whole calls pass often enough."""
    return st.one_of(*[valid] * 9, other)


def _pick(*values: object) -> st.SearchStrategy[object]:
    return st.sampled_from(values)


_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    _pick("", " ", "nobody", "Mars/Olympus", "2026-01-02T03:04:05", "2026-01-02X03:04:05Z"),
    _pick("2026-13-02T03:04:05Z", "2026-01-02T24:04:05Z", "2026-01-02T03:04:05z", "a@b.co"),
    st.lists(st.integers(), max_size=2),
)
_STAMPS = _pick("2026-01-02T03:04:05Z", "2026-01-02 03:04:05Z", "2026-01-02T04:04:05+01:00", 5)
_TRAITS = {
    "email": _mostly(_pick("a@b.co", "x@y"), _ODD),
    "timezone": _mostly(_pick("Europe/Paris", "UTC"), _ODD),
    "unsubscribed": _mostly(st.booleans(), _ODD),
    "created_at": _mostly(_STAMPS, _ODD),
    "last_seen_at": _mostly(_STAMPS, _ODD),
    "plan": _mostly(_pick("free", "paid", None), _ODD),
    "seats": _mostly(st.integers(-(2**54), 2**54) | st.floats(allow_nan=False), _ODD),
    "beta": _mostly(st.booleans(), _ODD),
    "trial_ends_at": _mostly(_STAMPS, _ODD),
}
_CALLS = _mostly(
    st.fixed_dictionaries(
        {
            "user_id": _mostly(_pick("u1", "u2"), _pick("", "  ", 7, None, "x" * 256)),
            "traits": st.fixed_dictionaries({}, optional=_TRAITS),
        }
    ),
    st.fixed_dictionaries({"userId": _pick("u3", 4), "traits": st.just({"plan": "free"})}),
)
_TYPES = _mostly(
    _pick({}, {"plan": AttrType.STRING, "seats": AttrType.NUMBER, "trial_ends_at": "timestamp"}),
    st.dictionaries(_pick("plan", "seats", "beta", "trial_ends_at"), _pick(*AttrType)),
)


def _full_way(validator: Validator, call: dict[str, object]) -> list[object]:
    return row_of(*validator._user_checked(call, "line 1: "))


def _agree(types: dict[str, AttrType], calls: list[dict[str, object]]) -> None:
    fast, full = Validator(types, now=0), Validator(types, now=0)
    for call in calls:
        try:
            expected = _full_way(full, call)
        except InvalidInput as exc:
            with pytest.raises(InvalidInput) as caught:
                fast.user_row(call, "line 1: ")
            assert caught.value.problems == exc.problems
        else:
            assert fast.user_row(call, "line 1: ") == expected
        assert (fast.types, fast.new_types) == (full.types, full.new_types)


_KNOWN = {"plan": AttrType.STRING, "seats": AttrType.NUMBER, "beta": AttrType.BOOLEAN}
_ODD_VALUES = [None, True, 0, 1.5, -(2**53), 2**53 + 1, float("inf"), "", "x", "a@b.co", [1], {}]
_ODD_VALUES += ["Europe/Paris", "Mars/Olympus", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05"]
_ODD_VALUES += ["fr\x00ee", "a@b\x00.co", "UTC\x00", "2026-01-02T03:04:0\x00Z"]


@pytest.mark.parametrize("types", [{}, _KNOWN], ids=["first-sight", "declared"])
def test_the_fast_path_agrees_with_the_full_check_trait_by_trait(types):
    base = {
        "user_id": "u1",
        "traits": {
            "email": "a@b.co",
            "timezone": "UTC",
            "created_at": "2026-01-02T03:04:05Z",
            "last_seen_at": 1767323045,
            "unsubscribed": False,
            "plan": "free",
            "seats": 3,
            "beta": True,
            "trial_ends_at": "2026-01-02T04:04:05+01:00",
        },
    }
    calls = [base] + [
        {"user_id": "u1", "traits": {**base["traits"], name: odd}}
        for name in base["traits"]
        for odd in _ODD_VALUES
    ]
    calls += [
        {**base, "user_id": "u\x001"},
        {"user_id": "u1", "traits": {**base["traits"], "pl\x00an": "free"}},
    ]
    for call in calls:  # each on its own, then all in a row (types fixed as they go)
        _agree(types, [call])
    _agree(types, calls)


@settings(max_examples=400, deadline=None)
@given(_TYPES, st.lists(_CALLS, min_size=1, max_size=4))
def test_the_fast_path_agrees_with_the_full_check(types, calls):
    _agree(types, calls)


_CANONICAL = ["20", "26", "-", "01", "-", "02", "T", "03", ":", "04", ":", "05", "Z"]
_ODD_PARTS = ["", " ", "_", "X", "T", "-", ":", "+", "z", "0", "٠٠", "1 ", "99", "+01:00:30"]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_CANONICAL) - 1), st.sampled_from(_ODD_PARTS)), max_size=2
    ),
    _pick("Z", "+01:00", "-0530"),
)
def test_timestamps_of_the_common_shapes_read_as_the_full_way_reads_them(changes, zone):
    parts = [*_CANONICAL[:-1], zone]
    for where, odd in changes:  # one or two parts of a good timestamp made odd
        parts[where] = odd
    text = "".join(parts)
    try:
        expected = _parse_timestamp(text)
    except TypeMismatch as exc:
        with pytest.raises(TypeMismatch) as caught:
            parse_timestamp(text)
        assert str(caught.value) == str(exc)
    else:
        assert parse_timestamp(text) == expected


def test_common_timestamps_take_the_fast_path():
    assert parse_timestamp("2026-01-02T03:04:05Z") == 1767323045.0
    assert parse_timestamp("2026-01-02T04:04:05+01:00") == 1767323045.0
    assert parse_timestamp(datetime.fromisoformat("2026-01-02T03:04:05+00:00")) == 1767323045.0


# ---- batches ----------------------------------------------------------------------------------


def test_a_batch_merges_a_user_named_twice_as_write_users_does():
    validator = Validator({}, now=0)
    calls = [
        {"user_id": "u1", "traits": {"email": "a@b.co", "plan": "free", "seats": 2}},
        {"user_id": "u2", "traits": {"unsubscribed": True}},
        {"user_id": "u1", "traits": {"timezone": "UTC", "seats": None, "beta": True}},
    ]
    cutter = BatchCutter(lane=1)
    for call in calls:
        cutter.add(validator.user_row(call))
    batch = cutter.cut()
    assert (batch.lane, batch.size) == (1, 3)
    merged = merge_user_records(Validator({}, now=0).user(call) for call in calls)
    assert [row[0] for row in batch.rows] == [record.user_id for record in merged]
    u1, u2 = batch.rows
    assert u1 == ["u1", "a@b.co", "UTC", None, None, None, merged[0].attributes, True]
    assert merged[0].attributes == {"plan": "free", "seats": None, "beta": True}
    assert u2 == ["u2", None, None, True, None, None, {}, False]
    later = cutter.cut()
    assert (later.rows, later.size) == ([], 0)


def test_a_user_named_again_keeps_its_place_and_a_removal_can_be_undone():
    validator = Validator({}, now=0)
    cutter = BatchCutter()
    for call in [
        {"user_id": "u1", "traits": {"plan": "free"}},
        {"user_id": "u2", "traits": {"plan": None}},
        {"user_id": "u1", "traits": {"plan": None}},
        {"user_id": "u2", "traits": {"plan": "paid"}},
    ]:
        cutter.add(validator.user_row(call))
    rows = cutter.cut().rows
    assert [(row[0], row[6], row[7]) for row in rows] == [
        ("u1", {"plan": None}, True),
        ("u2", {"plan": "paid"}, False),
    ]


def test_a_staged_batch_gives_each_user_the_names_it_writes():
    """`stage` makes each set of names' JSON once: users giving other names, or the same
    names in another order, each get their own."""
    validator = Validator({}, now=0)
    calls = [
        {"user_id": "u1", "traits": {"email": "a@b.co", "plan": "free"}},
        {"user_id": "u2", "traits": {"plan": "free", "email": "c@d.co"}},
        {"user_id": "u3", "traits": {"plan": None, "seats": 2}},
        {"user_id": "u4", "traits": {"email": "e@f.co", "plan": "paid"}},
        {"user_id": "u5", "traits": {"unsubscribed": True}},
    ]
    rows = [validator.user_row(call) for call in calls]
    staged = stage(rows, 7.0)
    assert len(staged) == 5 and len(staged.values) == 5 * WIDTH
    names = [orjson.loads(staged.values[i * WIDTH + 8]) for i in range(5)]
    assert names == [orjson.loads(names_json(written_names(row), 7.0)) for row in rows]
    assert [list(n) for n in names[:2]] == [["email", "plan"], ["email", "plan"]]
    assert list(names[2]) == ["plan", "seats"] and list(names[4]) == ["unsubscribed"]
    assert staged.values[2 * WIDTH + 6] == '{"seats":2}'  # the removal is in the patch
    assert staged.patches == {"u3": {"plan": None, "seats": 2}}
    assert staged.shapes == {(False, False), (False, True), (True, False)}
    assert Staged.from_message(orjson.loads(orjson.dumps(staged.message()))) == staged


# ---- reading ----------------------------------------------------------------------------------


def test_jsonl_lines_are_cut_and_numbered_as_text_mode_cuts_them(tmp_path):
    path = tmp_path / "users.jsonl"
    path.write_bytes(
        b'{"user_id": "u1"}\r\n\n   \n{"user_id": "u2"}\r{not json\n[1]\n'
        b'\xc2\xa0\n{"user_id": "u3"}'
    )
    fast = [(n, raw, call, error) for n, raw, call, error, _ in read_calls(path, "users", "jsonl")]
    slow = [
        (line.number, line.raw, line.call, line.error)
        for line in read_lines(path, "users", "jsonl")
    ]
    assert fast == slow
    assert [n for n, *_ in fast] == [1, 4, 5, 6, 8]
    *_, read = list(read_calls(path, "users", "jsonl"))[-1]
    assert read == path.stat().st_size


# ---- the writer thread ------------------------------------------------------------------------


def test_the_writer_writes_in_order_on_its_own_thread():
    seen: list[tuple[int, str]] = []
    with BackgroundWriter[int](lambda n: seen.append((n, threading.current_thread().name))) as w:
        for n in range(10):
            w.put(n)
    assert [n for n, _ in seen] == list(range(10))
    assert {name for _, name in seen} == {"drumbeat-writer"}


def test_a_write_error_comes_back_to_the_caller_and_later_items_are_dropped():
    written: list[int] = []

    def write(n: int) -> None:
        if n == 2:
            raise ValueError("disk full")
        written.append(n)

    with pytest.raises(ValueError, match="disk full"), BackgroundWriter[int](write) as w:
        for n in range(100):
            w.put(n)
            time.sleep(0.001)
    assert written == [0, 1]


def test_the_queue_is_bounded_and_a_failing_caller_drops_what_is_queued():
    release = threading.Event()
    written: list[int] = []

    def write(n: int) -> None:
        release.wait(5)
        written.append(n)

    with pytest.raises(RuntimeError), BackgroundWriter[int](write, depth=1) as w:
        w.put(0)  # taken by the thread, which waits
        time.sleep(0.05)
        w.put(1)  # queued
        blocked = threading.Thread(target=w.put, args=(2,))
        blocked.start()
        time.sleep(0.05)
        assert blocked.is_alive()  # the queue is full
        release.set()
        blocked.join(5)
        raise RuntimeError("the caller fails")
    assert written[:1] == [0] and len(written) <= 3


LINES = [
    b'{"user_id":"u1","traits":{}}\n',
    b'{"user_id":"u1","traits":{"plan":"free"}}\n',  # u1 again
    b'{"traits":{},"user_id":"u1"}\n',
    b'{"user_id":"\\u00fcml","traits":{}}\n',
    '{"user_id":"üml","traits":{}}\n'.encode(),  # the same user, unescaped
    b'{"user_id":"a","userId":"b","traits":{}}\n',  # aliases
    b'{"user_id":"u2","traits":{"user_id":"x"}}\n',
    b'{"user_id":42,"traits":{}}\n',
    b"not json\n",
]


def test_check_processes_read_every_line_once_between_them(tmp_path):
    """Each share checks only its users' lines; together they take every line, bad ones
    included, and a user's lines however spelled go to one share."""
    from drumbeat.ingest.checking import check_file

    path = tmp_path / "users.jsonl"
    path.write_bytes(b"".join(LINES))
    seen: list[int] = []
    imported = 0
    users: list[set[str]] = [set(), set()]
    for share in range(2):
        validator = Validator({}, now=0.0)
        bad = lambda number, raw, problems: seen.append(number)  # noqa: E731
        for batch, _read in check_file(
            path, "jsonl", validator, size=100, skip_invalid=True, bad=bad, share=share, shares=2
        ):
            if batch is not None:
                imported += batch.size
                users[share] |= {row[0] for row in batch.rows}
    assert seen == [9] and imported == len(LINES) - 1
    assert users[0] | users[1] == {"u1", "üml", "b", "u2", "42"} and not users[0] & users[1]
