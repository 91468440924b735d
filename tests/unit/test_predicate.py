"""The Python predicate: the semantics of every operator, missing and mistyped values, times,
and event facts (the SQL compiler is held to the same answers by the contract test)."""

from __future__ import annotations

from typing import Any

import pytest

from drumbeat.model.attributes import AttrType
from drumbeat.model.rules import EventCondition, parse_rule
from drumbeat.model.user import User
from drumbeat.rules import RawEvent, compile_predicate, count_matching_events

NOW = 1_780_000_000.0
DAY = 86_400.0
TYPES = {"plan": AttrType.STRING, "seats": AttrType.NUMBER, "beta": AttrType.BOOLEAN,
         "trial_end": AttrType.TIMESTAMP}  # fmt: skip


def holds(rule: dict[str, Any], facts: dict[str, int] | None = None, **values: Any) -> bool:
    standard = {k: values.pop(k) for k in list(values) if k in User.__dataclass_fields__}
    person = User(user_id="u1", attributes=values, **standard)
    return compile_predicate(parse_rule(rule), TYPES)(person, facts or {}, NOW)


OPERATORS = [
    ("eq", "free"), ("ne", "free"), ("in", ["free"]), ("not_in", ["paid"]), ("gt", "a"),
    ("gte", "a"), ("lt", "z"), ("lte", "z"), ("contains", "r"), ("starts_with", "f"),
]  # fmt: skip


@pytest.mark.parametrize(("op", "value"), OPERATORS)
def test_a_missing_attribute_fails_every_comparison(op: str, value: object) -> None:
    assert not holds({"attr": "plan", op: value})
    assert holds({"not": {"attr": "plan", op: value}})
    assert not holds({"attr": "country", op: value})


def test_exists_is_about_presence_only() -> None:
    assert holds({"attr": "plan", "exists": False})
    assert not holds({"attr": "plan", "exists": True})
    assert holds({"attr": "plan", "exists": True}, plan=5)  # present, whatever its type
    assert holds({"attr": "email", "exists": True}, email="a@b.co")
    assert holds({"attr": "unsubscribed", "exists": True})  # a boolean field is always set


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"eq": "free"}, "free", True), ({"eq": "free"}, "Free", False),
        ({"ne": "free"}, "Free", True), ({"ne": "free"}, "free", False),
        ({"in": ["a", "free"]}, "free", True), ({"in": []}, "free", False),
        ({"not_in": ["a", "free"]}, "free", False), ({"not_in": []}, "free", True),
        ({"in": [5, "free", True]}, "free", True),  # only elements of the type count
        ({"contains": "RE"}, "free", False), ({"contains": "re"}, "free", True),
        ({"contains": "%"}, "free", False), ({"contains": "%"}, "10%", True),
        ({"starts_with": "F"}, "free", False), ({"starts_with": "_"}, "a_b", False),
        ({"starts_with": ""}, "free", True), ({"contains": ""}, "", True),
        ({"gt": "Z"}, "a", True), ({"lt": "é"}, "z", True), ({"gte": "free"}, "free", True),
        ({"eq": 5}, "5", False), ({"ne": 5}, "free", False),  # a number never fits a string
    ],
)  # fmt: skip
def test_strings_compare_exactly(rule: dict[str, Any], value: str, expected: bool) -> None:
    assert holds({"attr": "plan", **rule}, plan=value) is expected


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"eq": 2}, 2.0, True), ({"gt": 1.5}, 2, True), ({"lte": -1}, -1.0, True),
        ({"in": [1, 2]}, 2.0, True), ({"not_in": [1, 2]}, 3, True), ({"eq": 1}, True, False),
        ({"ne": 1}, True, False), ({"gte": 0}, "5", False), ({"eq": "2"}, 2, False),
    ],
)  # fmt: skip
def test_numbers_compare_numerically_and_booleans_are_not_numbers(
    rule: dict[str, Any], value: object, expected: bool
) -> None:
    assert holds({"attr": "seats", **rule}, seats=value) is expected


def test_booleans() -> None:
    assert holds({"attr": "beta", "eq": True}, beta=True)
    assert holds({"attr": "beta", "ne": True}, beta=False)
    assert not holds({"attr": "beta", "eq": 1}, beta=True)
    assert not holds({"attr": "beta", "gt": 0}, beta=True)
    assert holds({"attr": "unsubscribed", "eq": False})


def test_untyped_attributes_take_the_type_of_the_rule_value() -> None:
    assert holds({"attr": "misc", "eq": 5}, misc=5.0)
    assert not holds({"attr": "misc", "eq": 5}, misc="5")
    assert not holds({"attr": "misc", "ne": 5}, misc="5")
    assert holds({"attr": "misc", "in": ["a", 1]}, misc="a")
    assert not holds({"attr": "misc", "in": ["a", 1]}, misc=1)  # the first element sets the type
    assert holds({"attr": "misc", "not_in": []}, misc=1)
    assert holds({"attr": "misc", "before": "1d ago"}, misc=NOW - 2 * DAY)  # time → timestamp


@pytest.mark.parametrize(
    ("rule", "when", "expected"),
    [
        ({"before": "3d ago"}, NOW - 3 * DAY - 1, True),
        ({"before": "3d ago"}, NOW - 3 * DAY, False),
        ({"after": "in 2h"}, NOW + 7201, True), ({"after": "now"}, NOW, False),
        ({"lte": "now"}, NOW, True), ({"eq": "2026-05-28T20:26:40Z"}, NOW, True),
        ({"before": "2026-05-28T20:26:41Z"}, NOW, True), ({"eq": NOW}, NOW, True),
        ({"in": ["now", "1d ago"]}, NOW - DAY, True), ({"not_in": ["now"]}, NOW, False),
        ({"gt": "soon"}, NOW, False),  # not a time: never true on a timestamp
    ],
)  # fmt: skip
def test_times_resolve_against_now(rule: dict[str, Any], when: float, expected: bool) -> None:
    assert holds({"attr": "trial_end", **rule}, trial_end=when) is expected
    assert holds({"attr": "created_at", **rule}, created_at=when) is expected


def test_before_and_after_only_apply_to_timestamps() -> None:
    assert not holds({"attr": "seats", "before": "now"}, seats=1)
    assert not holds({"attr": "plan", "after": "3d ago"}, plan="2026-01-01T00:00:00Z")


def test_all_any_not() -> None:
    free, paid = {"attr": "plan", "eq": "free"}, {"attr": "plan", "eq": "paid"}
    assert holds({"all": [free, {"not": paid}]}, plan="free")
    assert not holds({"all": [free, paid]}, plan="free")
    assert holds({"any": [paid, free, paid]}, plan="free")
    assert holds({"all": []}) and not holds({"any": []})
    assert holds({"not": {"not": free}}, plan="free")


def test_event_conditions_compare_the_fact_for_their_key() -> None:
    cond = parse_rule({"event": "paid", "within": "1d"})
    assert isinstance(cond, EventCondition)
    at_least_one = {"event": "paid", "within": "1d"}
    assert holds(at_least_one, {cond.key: 1})
    assert not holds(at_least_one, {cond.key: 0}) and not holds(at_least_one, {})
    assert holds({"event": "paid", "within": "1d", "count": {"eq": 0}}, {})
    assert holds({"event": "paid", "within": "1d", "count": {"lte": 2}}, {cond.key: 2})
    assert not holds({"event": "paid", "within": "1d", "count": {"lt": 2}}, {cond.key: 2})
    assert holds({"event": "paid", "within": "1d", "count": {"gte": 0}}, {})


EVENTS: list[RawEvent] = [
    ("paid", NOW - DAY, {"amount": 10, "plan": "Pro"}),  # exactly at the window's start
    ("paid", NOW - DAY - 1, {"amount": 20}),
    ("paid", NOW, {"amount": 2.5, "plan": None}),
    ("paid", NOW + 1, {"amount": 99}),  # in the future: never counted
    ("Paid", NOW, {"amount": 10}),
    ("viewed", NOW - 3600, {"amount": "10", "tags": ["a"]}),
]


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ({"event": "paid"}, 3), ({"event": "paid", "within": "1d"}, 2),
        ({"event": "paid", "within": "0s"}, 1), ({"event": "viewed", "within": "1h"}, 1),
        ({"event": "paid", "where": {"attr": "amount", "gte": 10}}, 2),
        ({"event": "paid", "where": {"attr": "amount", "eq": "10"}}, 0),
        ({"event": "viewed", "where": {"attr": "amount", "eq": "10"}}, 1),
        ({"event": "paid", "where": {"attr": "plan", "exists": False}}, 2),  # null is missing
        ({"event": "paid", "where": {"not": {"attr": "plan", "eq": "Pro"}}}, 2),
        ({"event": "viewed", "where": {"attr": "tags", "exists": True}}, 1),
        ({"event": "viewed", "where": {"attr": "tags", "eq": "a"}}, 0),
    ],
)  # fmt: skip
def test_count_matching_events(cond: dict[str, Any], expected: int) -> None:
    rule = parse_rule(cond)
    assert isinstance(rule, EventCondition)
    assert count_matching_events(rule, EVENTS, NOW) == expected


def test_where_strings_stay_strings() -> None:
    rule = parse_rule({"event": "e", "where": {"attr": "at", "eq": "2026-01-01T00:00:00Z"}})
    assert isinstance(rule, EventCondition)
    events: list[RawEvent] = [("e", NOW, {"at": "2026-01-01T00:00:00Z"}), ("e", NOW, {"at": 1})]
    assert count_matching_events(rule, events, NOW) == 1
