"""A rule compiled once into nested closures: the Python side of the rule language.

`compile_predicate(rule, types)(user, facts, now)` answers for one user; `facts` maps each
event condition's `key` to the user's count of matching events (missing = 0), computed by
the store (`drumbeat.rules.sql.event_counts_select`) or by `count_matching_events`.
The closures do no type dispatch or AST walking per call: everything that depends only on
the rule is decided at compile time. `drumbeat.rules.sql` must give the same answers.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, TypeAlias, TypeVar

from drumbeat.model.attributes import STANDARD_FIELDS, AttrType
from drumbeat.model.durations import TimeRef
from drumbeat.model.rules import (
    LIST_OPS,
    AllOf,
    AttrCondition,
    EventCondition,
    Not,
    Op,
    Rule,
)
from drumbeat.model.user import User
from drumbeat.rules.resolve import Check, resolve

Facts: TypeAlias = Mapping[str, int]
Predicate: TypeAlias = Callable[[User, Facts, float], bool]
Properties: TypeAlias = Mapping[str, Any]
RawEvent: TypeAlias = tuple[str, float, Properties]

_R = TypeVar("_R")  # what a rule reads: a User, or an event's properties
_Test: TypeAlias = Callable[[_R, Facts, float], bool]
_ValueTest: TypeAlias = Callable[[Any, float], bool]

_NO_FACTS: Facts = {}
_KINDS: dict[AttrType, frozenset[type]] = {
    AttrType.STRING: frozenset({str}),
    AttrType.NUMBER: frozenset({int, float}),  # type(True) is bool: booleans stay out
    AttrType.BOOLEAN: frozenset({bool}),
    AttrType.TIMESTAMP: frozenset({int, float}),
}
_COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
    Op.LT: operator.lt,
    Op.LTE: operator.le,
    Op.BEFORE: operator.lt,
    Op.AFTER: operator.gt,
    Op.CONTAINS: operator.contains,
    Op.STARTS_WITH: str.startswith,
}


def compile_predicate(rule: Rule, types: Mapping[str, AttrType]) -> Predicate:
    """`rule` as a function of (user, event facts, now in epoch seconds)."""

    def leaf(cond: AttrCondition) -> _Test[User]:
        return _on_user(cond.attr, value_test(resolve(cond, types)))

    return _compile(rule, leaf, _event_test)


def count_matching_events(cond: EventCondition, events: Iterable[RawEvent], now: float) -> int:
    """The fact for `cond` computed from raw (name, ts, properties) events: how many are named
    `cond.event`, have `now - within <= ts <= now` and match `where`."""
    where = None if cond.where is None else _where_test(cond.where)
    since = -math.inf if cond.within is None else now - cond.within
    return sum(
        1
        for name, ts, properties in events
        if name == cond.event
        and since <= ts <= now
        and (where is None or where(properties, _NO_FACTS, now))
    )


@lru_cache(maxsize=1024)
def _where_test(rule: Rule) -> _Test[Properties]:
    def leaf(cond: AttrCondition) -> _Test[Properties]:
        test, name = value_test(resolve(cond, None)), cond.attr
        return lambda props, facts, now: test(props.get(name), now)

    def no_events(cond: EventCondition) -> _Test[Properties]:
        raise TypeError("event conditions cannot read event properties")

    return _compile(rule, leaf, no_events)


def _compile(
    rule: Rule,
    leaf: Callable[[AttrCondition], _Test[_R]],
    event: Callable[[EventCondition], _Test[_R]],
) -> _Test[_R]:
    if isinstance(rule, AttrCondition):
        return leaf(rule)
    if isinstance(rule, EventCondition):
        return event(rule)
    if isinstance(rule, Not):
        inner = _compile(rule.rule, leaf, event)
        return lambda record, facts, now: not inner(record, facts, now)
    parts = tuple(_compile(child, leaf, event) for child in rule.rules)
    return _all(parts) if isinstance(rule, AllOf) else _any(parts)


def _constant(result: bool) -> _Test[Any]:
    return lambda record, facts, now: result


def _all(parts: tuple[_Test[_R], ...]) -> _Test[_R]:
    if len(parts) <= 1:
        return parts[0] if parts else _constant(True)
    if len(parts) == 2:
        first, second = parts
        return lambda record, facts, now: first(record, facts, now) and second(record, facts, now)
    return lambda record, facts, now: all(part(record, facts, now) for part in parts)


def _any(parts: tuple[_Test[_R], ...]) -> _Test[_R]:
    if len(parts) <= 1:
        return parts[0] if parts else _constant(False)
    if len(parts) == 2:
        first, second = parts
        return lambda record, facts, now: first(record, facts, now) or second(record, facts, now)
    return lambda record, facts, now: any(part(record, facts, now) for part in parts)


def _event_test(cond: EventCondition) -> _Test[User]:
    lo, hi = cond.count.bounds()
    key = cond.key
    if lo > hi or (lo <= 0 and hi == math.inf):
        return _constant(lo <= hi)
    if hi == math.inf:
        return lambda user, facts, now: facts.get(key, 0) >= lo
    return lambda user, facts, now: lo <= facts.get(key, 0) <= hi


def _on_user(name: str, test: _ValueTest) -> _Test[User]:
    if name in STANDARD_FIELDS:
        get = operator.attrgetter(name)
        return lambda user, facts, now: test(get(user), now)
    return lambda user, facts, now: test(user.attributes.get(name), now)


def value_test(check: Check) -> Callable[[Any, float], bool]:
    """A test of one stored value (None = missing) at `now`, for `check`."""
    if check.constant is not None:
        result = check.constant
        return lambda value, now: result
    if check.type is None:  # exists, or not_in [] on an untyped attribute: presence only
        want = check.values[0] if check.op is Op.EXISTS else True
        return lambda value, now: (value is not None) is want
    kinds = _KINDS[check.type]
    if check.op in LIST_OPS:
        return _membership(check, kinds)
    compare = _COMPARE[check.op]
    (ref,) = check.values
    if isinstance(ref, TimeRef) and ref.relative:
        offset = ref.seconds
        return lambda value, now: type(value) in kinds and compare(value, now + offset)
    constant = ref.seconds if isinstance(ref, TimeRef) else ref
    return lambda value, now: type(value) in kinds and compare(value, constant)


def _membership(check: Check, kinds: frozenset[type]) -> _ValueTest:
    outside = check.op is Op.NOT_IN
    if check.relative:
        return lambda value, now: type(value) in kinds and (value in check.at(now)) is not outside
    members = frozenset(check.at(0.0))
    if outside:
        return lambda value, now: type(value) in kinds and value not in members
    return lambda value, now: type(value) in kinds and value in members


__all__ = ["Facts", "Predicate", "RawEvent", "compile_predicate", "count_matching_events"]
