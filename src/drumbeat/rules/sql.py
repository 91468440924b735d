"""A rule compiled to a SQLAlchemy boolean over `users`: the SQL side of the rule language.

It must select exactly the users for whom `drumbeat.rules.predicate` says true (a property
test holds them together on SQLite and PostgreSQL). How:
- a condition may be NULL when an attribute is missing; NULL is only ever read as false,
  and `not` turns it into false first (`NOT coalesce(x, false)`), so logic stays two-valued;
- JSON values are guarded by their runtime type (`json_type` / `jsonb_typeof`); on PostgreSQL
  numbers compare jsonb to jsonb, so odd data can never raise a cast error;
- strings compare byte-wise (SQLite BINARY, PostgreSQL COLLATE "C"), `contains` and
  `starts_with` use instr/substr and strpos/starts_with, never LIKE;
- event conditions are correlated subqueries on `events` (EXISTS when "at least one").

`now` is a number, or `NOW`: a query parameter, so that a rule compiled once serves every
tick (`compile_audience`; the planner keeps it until the campaign's version or an attribute
type changes) and SQLAlchemy's statement cache hits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Select, Table
from sqlalchemy.sql.elements import False_, True_

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
from drumbeat.rules.resolve import Check, resolve
from drumbeat.rules.sql_values import (
    Bool,
    ColumnValue,
    JsonValue,
    Operand,
    StoredValue,
    json_value,
)
from drumbeat.store.schema import events, users

# The evaluation's time, and the last tick's watermark (rules/flips.py), as parameters.
NOW = sa.bindparam("drumbeat_now", type_=sa.Float)
SINCE = sa.bindparam("drumbeat_since", type_=sa.Float)
Now: TypeAlias = float | ColumnElement[Any]

DIALECTS = ("sqlite", "postgresql")
_ORDERING = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE})
_COMPARE: dict[Op, Callable[[Any, Any], Bool]] = {
    Op.EQ: lambda x, c: x == c,
    Op.NE: lambda x, c: x != c,
    Op.GT: lambda x, c: x > c,
    Op.GTE: lambda x, c: x >= c,
    Op.LT: lambda x, c: x < c,
    Op.LTE: lambda x, c: x <= c,
    Op.BEFORE: lambda x, c: x < c,
    Op.AFTER: lambda x, c: x > c,
}


def compile_sql(
    rule: Rule,
    *,
    types: Mapping[str, AttrType],
    now: Now,
    dialect: str,
    table: Table = users,
) -> Bool:
    """`rule` as a WHERE clause over `table` (the users table), evaluated at `now`."""
    _check(dialect)

    def leaf(cond: AttrCondition) -> Bool:
        check = resolve(cond, types)
        if cond.attr in STANDARD_FIELDS:
            return _condition(check, ColumnValue(table.c[cond.attr], dialect), now)
        return _condition(check, json_value(table.c.attributes, cond.attr, dialect), now)

    return _compile(rule, leaf, lambda cond: _event_sql(cond, table, now, dialect))


def resolved(check: Check, now: Now) -> tuple[Operand, ...]:
    """`check.at(now)`, with `now` a number or a parameter."""
    if not isinstance(now, ColumnElement):
        return check.at(now)
    return tuple(
        (now + v.seconds if v.relative else v.seconds) if isinstance(v, TimeRef) else v
        for v in check.values
    )


@dataclass(frozen=True)
class CompiledAudience:
    """An audience rule as SQL over `users` with `NOW` (and, in `flips`, `SINCE`) left as
    parameters: built once, run at any time with `params(now, since)`."""

    where: Bool
    flips: tuple[Bool, ...]  # one condition per way time alone may move a user (flips.py)

    @staticmethod
    def params(now: float, since: float | None = None) -> dict[str, float]:
        values = {NOW.key: now}
        if since is not None:
            values[SINCE.key] = since
        return values


def compile_audience(
    rule: Rule, *, types: Mapping[str, AttrType], dialect: str, workspace_id: int
) -> CompiledAudience:
    from drumbeat.rules.flips import time_flips

    return CompiledAudience(
        compile_sql(rule, types=types, now=NOW, dialect=dialect),
        tuple(
            time_flips(
                rule, types=types, since=SINCE, now=NOW, dialect=dialect, workspace_id=workspace_id
            )
        ),
    )


def event_counts_select(
    cond: EventCondition,
    *,
    workspace_id: int,
    user_ids: Iterable[str],
    now: float,
    dialect: str,
) -> Select[Any]:
    """Rows (user_id, count) of the fact for `cond`, for those of `user_ids` whose count > 0."""
    _check(dialect)
    return (
        sa.select(events.c.user_id, sa.func.count().label("count"))
        .where(
            events.c.workspace_id == workspace_id,
            events.c.user_id.in_(list(user_ids)),
            *_event_criteria(cond, now, dialect),
        )
        .group_by(events.c.user_id)
    )


def event_facts_select(
    conds: Sequence[EventCondition],
    *,
    workspace_id: int,
    user_ids: Iterable[str],
    now: float,
    dialect: str,
) -> Select[Any]:
    """Rows (user_id, then the count of each of `conds` in order) for those of `user_ids`
    with any event of a name the conditions read: every fact a batch needs, in one query
    (one pass over the batch's events instead of one per condition)."""
    _check(dialect)
    counts = [
        sa.func.sum(sa.case((sa.and_(*_event_criteria(cond, now, dialect)), 1), else_=0))
        for cond in conds
    ]
    return (
        sa.select(events.c.user_id, *counts)
        .where(
            events.c.workspace_id == workspace_id,
            events.c.user_id.in_(list(user_ids)),
            events.c.name.in_(sorted({cond.event for cond in conds})),
            events.c.ts <= now,
        )
        .group_by(events.c.user_id)
    )


def _check(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")


def _compile(
    rule: Rule, leaf: Callable[[AttrCondition], Bool], event: Callable[[EventCondition], Bool]
) -> Bool:
    if isinstance(rule, AttrCondition):
        return leaf(rule)
    if isinstance(rule, EventCondition):
        return event(rule)
    if isinstance(rule, Not):
        inner = _compile(rule.rule, leaf, event)
        if isinstance(inner, True_ | False_):
            return sa.not_(inner)
        return sa.not_(sa.func.coalesce(inner, sa.false()))
    parts = [_compile(child, leaf, event) for child in rule.rules]
    return sa.and_(sa.true(), *parts) if isinstance(rule, AllOf) else sa.or_(sa.false(), *parts)


def _condition(check: Check, value: StoredValue, now: Now) -> Bool:
    """One attribute condition; NULL (when the value is missing) reads as false."""
    if check.constant is not None:
        return sa.true() if check.constant else sa.false()
    if check.op is Op.EXISTS:
        return value.present() if check.values[0] else value.absent()
    if check.type is None:  # not_in [] on an untyped attribute: presence only
        return value.present()
    kind = check.type
    guard = value.guard(kind)
    constants = [value.bind(kind, c) for c in resolved(check, now)]
    if check.op in LIST_OPS:
        if not constants:  # not_in []: any present value of the type
            return sa.and_(value.present(), guard)
        operand = value.operand(kind)
        inside = operand.in_(constants) if check.op is Op.IN else operand.not_in(constants)
        return sa.and_(guard, inside)
    return sa.and_(guard, _compare(check.op, kind, value, constants[0], check.values[0]))


def _compare(
    op: Op, kind: AttrType, value: StoredValue, constant: ColumnElement[Any], raw: object
) -> Bool:
    operand = value.operand(kind)
    if op is Op.CONTAINS:
        position = sa.func.strpos if value.dialect == "postgresql" else sa.func.instr
        return position(operand, constant, type_=sa.Integer) > 0
    if op is Op.STARTS_WITH:
        if value.dialect == "postgresql":
            return sa.func.starts_with(operand, constant, type_=sa.Boolean)
        return sa.func.substr(operand, 1, len(str(raw))) == constant
    if kind is AttrType.STRING and value.dialect == "postgresql" and op in _ORDERING:
        operand = operand.collate("C")  # byte order, as Python and SQLite compare
    return _COMPARE[op](operand, constant)


def _event_criteria(
    cond: EventCondition, now: Now, dialect: str, *, window: bool = True
) -> list[Bool]:
    """What an event must be to count for `cond`: its name, its time in the window (unless
    `window` is false), its properties matching `where`."""
    criteria: list[Bool] = [events.c.name == cond.event]
    if window:
        criteria.append(events.c.ts <= now)
        if cond.within is not None:
            criteria.append(events.c.ts >= now - cond.within)
    if cond.where is not None:

        def leaf(prop: AttrCondition) -> Bool:
            value: JsonValue = json_value(events.c.properties, prop.attr, dialect)
            return _condition(resolve(prop, None), value, now)

        def nested(_: EventCondition) -> Bool:
            raise TypeError("event conditions cannot read event properties")

        criteria.append(_compile(cond.where, leaf, nested))
    return criteria


def _event_sql(cond: EventCondition, table: Table, now: Now, dialect: str) -> Bool:
    lo, hi = cond.count.bounds()
    if lo > hi or (lo <= 0 and hi == math.inf):
        return sa.true() if lo <= hi else sa.false()
    same_user = (
        events.c.workspace_id == table.c.workspace_id,
        events.c.user_id == table.c.user_id,
        *_event_criteria(cond, now, dialect),
    )
    if (lo, hi) in ((1, math.inf), (0, 0)):
        found = sa.select(sa.literal(1)).where(*same_user).correlate(table).exists()
        return found if lo == 1 else sa.not_(found)
    count = sa.select(sa.func.count()).where(*same_user).correlate(table).scalar_subquery()
    return count >= lo if hi == math.inf else count.between(lo, int(hi))


__all__ = [
    "DIALECTS",
    "NOW",
    "SINCE",
    "CompiledAudience",
    "compile_audience",
    "compile_sql",
    "event_counts_select",
]
