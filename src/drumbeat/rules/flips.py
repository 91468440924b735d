"""Which users time alone may have moved in or out of a rule between two ticks.

A rule with relative times (`created_at before 3d ago`, `{event: x, within: 14d}`) can change
its answer for a user nobody wrote to. Rather than re-read the whole audience, the planner
asks for users whose answer may have flipped between `since` and `now`:
- an attribute compared with a relative time flips only if its value lies between the two
  resolved times (`created_at` in [since − 3d, now − 3d]);
- an event count with `within` changes without a new event only as old events leave the
  window: an event in [since − within, now − within].
New events and attribute writes move `updated_at`, which the planner looks at anyway. The
result is a superset (both ends inclusive): the audience rule is still applied to it.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy import Table

from drumbeat.model.attributes import STANDARD_FIELDS, AttrType
from drumbeat.model.durations import TimeRef
from drumbeat.model.rules import AttrCondition, EventCondition, Rule
from drumbeat.rules.resolve import resolve
from drumbeat.rules.sql import _event_criteria
from drumbeat.rules.sql_values import Bool, ColumnValue, StoredValue, json_value
from drumbeat.store.schema import events, users


def time_flips_sql(
    rule: Rule,
    *,
    types: Mapping[str, AttrType],
    since: float,
    now: float,
    dialect: str,
    table: Table = users,
) -> Bool | None:
    """A condition over `table` true for every user whose answer to `rule` the passing of
    time from `since` to `now` may have changed; None when the rule reads no relative time."""
    parts: list[Bool] = []
    for _, node in rule.walk():
        if isinstance(node, AttrCondition):
            parts += _attribute_flips(node, types, since, now, dialect, table)
        elif isinstance(node, EventCondition) and node.within is not None:
            parts.append(_leaving_window(node, since, now, dialect, table))
    return sa.or_(*parts) if parts else None


def _attribute_flips(
    cond: AttrCondition,
    types: Mapping[str, AttrType],
    since: float,
    now: float,
    dialect: str,
    table: Table,
) -> list[Bool]:
    check = resolve(cond, types)
    if check.constant is not None or not check.relative or check.type is None:
        return []
    kind = check.type
    value: StoredValue = (
        ColumnValue(table.c[cond.attr], dialect)
        if cond.attr in STANDARD_FIELDS
        else json_value(table.c.attributes, cond.attr, dialect)
    )
    return [
        sa.and_(
            value.guard(kind),
            value.operand(kind).between(
                value.bind(kind, ref.resolve(since)), value.bind(kind, ref.resolve(now))
            ),
        )
        for ref in check.values
        if isinstance(ref, TimeRef) and ref.relative
    ]


def _leaving_window(
    cond: EventCondition, since: float, now: float, dialect: str, table: Table
) -> Bool:
    within = cond.within or 0.0
    criteria = _event_criteria(cond, now, dialect, window=False)
    return sa.exists().where(
        events.c.workspace_id == table.c.workspace_id,
        events.c.user_id == table.c.user_id,
        *criteria,
        events.c.ts.between(since - within, now - within),
    )
