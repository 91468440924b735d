"""The rule language's model: durations, times, parsing, error paths, keys and walks."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.attributes import AttrType
from drumbeat.model.documents import load_yaml
from drumbeat.model.durations import (
    InvalidDuration,
    InvalidTime,
    TimeRef,
    format_duration,
    parse_duration,
    parse_time,
)
from drumbeat.model.problems import problems_from_validation
from drumbeat.model.rules import (
    AllOf,
    AttrCondition,
    EventCondition,
    Not,
    Op,
    Rule,
    dump_rule,
    parse_rule,
)
from drumbeat.rules import type_problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("3d", 259200), ("2w", 1209600), (90, 90),
     (1.5, 1.5), ("45", 45), (" 2H ", 7200), ("0s", 0), ("1.5h", 5400)],
)  # fmt: skip
def test_durations_parse_to_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "3 years", "-2h", -1, True, None, "h", "2h30m", [1]])
def test_bad_durations_say_what_a_duration_looks_like(bad: object) -> None:
    with pytest.raises(InvalidDuration, match="expected a duration such as 30s"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30s"), (900, "15m"), (7200, "2h"), (259200, "3d"), (1209600, "2w"), (90, "90s"),
     (5400, "90m"), (0, "0s"), (1.5, "1.5s")],
)  # fmt: skip
def test_durations_format_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == seconds


def test_times_are_absolute_or_relative_to_now() -> None:
    now = 1_000_000.0
    assert parse_time("now").resolve(now) == now
    assert parse_time("3d ago").resolve(now) == now - 3 * 86400
    assert parse_time("in 2h").resolve(now) == now + 7200
    assert parse_time("2026-01-01T00:00:00Z") == TimeRef(1_767_225_600.0)
    assert parse_time("2026-01-01T01:00:00+01:00").resolve(now) == 1_767_225_600.0
    assert parse_time(1_767_225_600) == TimeRef(1_767_225_600.0)
    assert [str(parse_time(t)) for t in ("now", "3d ago", "in 2h")] == ["now", "3d ago", "in 2h"]


@pytest.mark.parametrize("bad", ["soon", "3d", "2026-01-01", "2026-01-01T00:00:00", True, None])
def test_bad_times_say_what_a_time_looks_like(bad: object) -> None:
    with pytest.raises(InvalidTime, match="expected a time"):
        parse_time(bad)


AUDIENCE = """
all:
  - {attr: plan, eq: free}
  - {attr: created_at, before: 3d ago}
  - any:
      - {attr: country, in: [US, GB]}
      - {event: viewed_pricing, count: {gte: 1}, within: 14d}
  - not: {attr: beta, exists: true}
"""


def test_a_rule_parses_into_frozen_hashable_nodes() -> None:
    rule = parse_rule(load_yaml(AUDIENCE))
    assert isinstance(rule, AllOf)
    first = rule.rules[0]
    assert isinstance(first, AttrCondition)
    assert (first.attr, first.op, first.value) == ("plan", Op.EQ, "free")
    assert hash(rule) == hash(parse_rule(load_yaml(AUDIENCE)))
    assert {rule: 1}[parse_rule(load_yaml(AUDIENCE))] == 1
    with pytest.raises(ValidationError):
        first.attr = "other"  # type: ignore[misc]


def test_a_rule_dumps_back_to_what_it_reads() -> None:
    data = load_yaml(AUDIENCE)
    data["all"][2]["any"][1]["within"] = "2w"  # 14d is two weeks: formatted with the largest unit
    assert dump_rule(parse_rule(load_yaml(AUDIENCE))) == data
    assert parse_rule(dump_rule(parse_rule(data))) == parse_rule(data)


def test_the_planner_reads_attributes_and_event_conditions() -> None:
    rule = parse_rule(
        {"any": [
            {"attr": "plan", "eq": "free"},
            {"event": "paid", "within": "1d", "where": {"attr": "amount", "gt": 5}},
            {"not": {"event": "paid", "within": "24h", "where": {"attr": "amount", "gt": 5},
                     "count": {"eq": 0}}},
            {"event": "paid"},
        ]}
    )  # fmt: skip
    assert rule.attributes() == {"plan"}  # property keys in `where` are not user attributes
    conditions = rule.event_conditions()
    assert [c.event for c in conditions] == ["paid", "paid"]  # 1d == 24h, count is not the key
    assert conditions[0].key != conditions[1].key
    same = {
        "event": "paid",
        "within": 86400,
        "where": {"attr": "amount", "gt": 5},
        "count": {"lt": 3},
    }
    assert conditions[0].key == parse_rule(same).event_conditions()[0].key


def test_event_conditions_default_to_at_least_one_of_all_time() -> None:
    cond = parse_rule({"event": "signed_up"})
    assert isinstance(cond, EventCondition)
    assert cond.count.bounds() == (1, float("inf"))
    assert (cond.within, cond.where) == (None, None)
    bounds = {op: parse_rule({"event": "e", "count": {op: 2}}).count.bounds()  # type: ignore[union-attr]
              for op in ("gte", "gt", "lte", "lt", "eq")}  # fmt: skip
    assert bounds == {"gte": (2, float("inf")), "gt": (3, float("inf")), "lte": (0, 2),
                      "lt": (0, 1), "eq": (2, 2)}  # fmt: skip


def test_yaml_timestamps_and_lists_are_read_as_values() -> None:
    rule = parse_rule({"attr": "trial_end", "after": datetime(2026, 1, 1, tzinfo=UTC)})
    assert isinstance(rule, AttrCondition) and rule.value == "2026-01-01T00:00:00Z"
    listed = parse_rule({"attr": "plan", "in": ["a", 1, True]})
    assert isinstance(listed, AttrCondition) and listed.value == ("a", 1, True)
    assert parse_rule({"not": {"all": []}}) == Not(rule=AllOf(rules=()))


def _problems(data: object, prefix: str = "audience") -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_rule(data, prefix)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"attr": "plan"}, "audience: expected an operator: one of eq, ne, in"),
        ({"attr": "n", "gt": 1, "lt": 5}, "audience: expected one operator, got gt and lt"),
        ({"attr": "n", "gte": True}, "audience.gte: expected a number, string or time"),
        ({"attr": "n", "eq": None}, "audience.eq: expected a value, not null"),
        ({"attr": "n", "eq": [1]}, "audience.eq: expected a string, number or boolean"),
        ({"attr": "n", "eq": 2**60}, "audience.eq: expected a finite number within ±2**53"),
        ({"attr": "n", "in": "x"}, "audience.in: expected a list"),
        ({"attr": "n", "in": [1, {}]}, "audience.in[1]: expected a string, number or boolean"),
        ({"attr": "n", "exists": "yes"}, "audience.exists: expected true or false"),
        ({"attr": "n", "contains": 5}, "audience.contains: expected a string"),
        ({"attr": "n", "before": "soon"}, "audience.before: expected a time: ISO-8601"),
        ({"attr": "n", "after": "2026-01-01"}, "audience.after: expected a time"),
        ({"attr": 'a"b', "eq": 1}, "audience.attr: expected a name"),
        ({"attr": "n", "eq": 1, "zz": 2}, "audience.zz: unknown field"),
        ({"event": "e", "count": {"gte": -1}}, "audience.count.gte: expected a whole number"),
        ({"event": "e", "count": {"gte": 1.5}}, "audience.count.gte: expected a whole number"),
        ({"event": "e", "count": {}}, "audience.count: expected an operator: one of gte"),
        ({"event": "e", "within": "3 years"}, "audience.within: expected a duration such as"),
        ({"event": ""}, "audience.event: expected a name"),
        ({"foo": 1}, "audience: expected a rule: a mapping with all, any, not, attr or event"),
        ("plan = free", "audience: expected a rule"),
        ({"all": {"attr": "n", "eq": 1}}, "audience.all: expected a list"),
        ({"not": [{"attr": "n", "eq": 1}]}, "audience.not: expected a rule"),
    ],
)
def test_problems_name_the_path_and_say_what_was_expected(rule: object, problem: str) -> None:
    (found,) = _problems(rule)
    assert found.startswith(problem)


def test_every_problem_is_reported_with_its_full_path() -> None:
    rule = {"all": [
        {"attr": "plan", "eq": "free"},
        {"attr": "x"},
        {"any": [{"attr": "seats", "gte": False}, {"event": "e", "within": "soon"}]},
    ]}  # fmt: skip
    assert _problems(rule) == [
        "audience.all[1]: expected an operator: one of eq, ne, in, not_in, gt, gte, lt, lte, "
        "exists, contains, starts_with, before, after",
        "audience.all[2].any[0].gte: expected a number, string or time",
        "audience.all[2].any[1].within: expected a duration such as 30s, 15m, 2h, 3d or 2w",
    ]


def test_where_reads_properties_only() -> None:
    nested = {"event": "a", "where": {"any": [{"attr": "x", "eq": 1}, {"not": {"event": "b"}}]}}
    assert _problems({"all": [nested]}) == [
        "audience.all[0].where.any[1].not: event conditions are not allowed in where"
    ]
    timed = {"event": "a", "where": {"attr": "at", "before": "1d ago"}}
    assert _problems(timed, "") == ["where: event properties hold no timestamps: use eq, gt, lt…"]


def test_validation_problems_convert_for_any_model() -> None:
    class Step(BaseModel):
        rule: Rule
        tries: int

    with pytest.raises(ValidationError) as caught:
        Step.model_validate({"rule": {"any": [{"attr": "n", "lt": None}]}, "tries": "many"})
    assert problems_from_validation(caught.value, "steps[2]") == [
        Problem("steps[2].rule.any[0].lt", "expected a value, not null"),
        Problem("steps[2].tries", "expected a whole number"),
    ]


def test_type_problems_flag_values_that_cannot_fit_a_known_type() -> None:
    types = {"seats": AttrType.NUMBER, "plan": AttrType.STRING}
    rule = parse_rule({"all": [
        {"attr": "seats", "gte": "five"},
        {"attr": "seats", "in": [1, "two"]},
        {"attr": "plan", "before": "1d ago"},
        {"attr": "created_at", "after": "2026-01-01T00:00:00Z"},
        {"attr": "country", "eq": 5},
        {"attr": "unsubscribed", "eq": "no"},
    ]})  # fmt: skip
    assert [str(p) for p in type_problems(rule, types, "audience")] == [
        "audience.all[0].gte: expected a number",
        "audience.all[1].in[1]: expected a number",
        "audience.all[2].before: does not apply to plan, a string attribute",
        "audience.all[5].eq: expected true or false",
    ]


def test_the_examples_in_the_reference_are_valid_rules() -> None:
    docs = Path(__file__).parents[2] / "docs" / "rules.md"
    blocks = re.findall(r"```yaml\n(.*?)```", docs.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 20
    for block in blocks:
        parse_rule(load_yaml(block))
