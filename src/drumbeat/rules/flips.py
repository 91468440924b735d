"""Which users time alone may have moved in or out of a rule between two ticks.

A rule with relative times (`created_at before 3d ago`, `{event: x, within: 14d}`) can change
its answer for a user nobody wrote to. Rather than re-read the whole audience, the planner
asks for users whose answer may have flipped between `since` and `now`:
- an attribute compared with a relative time flips only if its value lies between the two
  resolved times (`created_at` in [since − 3d, now − 3d]);
- an event count with `within` changes without a new event only as old events leave the
  window: an event in [since − within, now − within].
New events (`received_at`) and attribute writes (`updated_at`) the planner looks at anyway. The
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
from drumbeat.rules.sql import Now, _event_criteria
from drumbeat.rules.sql_values import Bool, ColumnValue, StoredValue, json_value
from drumbeat.store.schema import events, users


def time_flips(
    rule: Rule,
    *,
    types: Mapping[str, AttrType],
    since: Now,
    now: Now,
    dialect: str,
    workspace_id: int,
    table: Table = users,
) -> list[Bool]:
    """Conditions over `table`, one per way time alone can change the answer to `rule`
    between `since` and `now`; every user it changed for meets one of them. Each is meant
    for a query of its own (a range on one attribute, or ids from the events index), so
    the database can answer it from an index rather than by reading every user."""
    parts: list[Bool] = []
    for _, node in rule.walk():
        if isinstance(node, AttrCondition):
            parts += _attribute_flips(node, types, since, now, dialect, table)
        elif isinstance(node, EventCondition) and node.within is not None:
            parts.append(_leaving_window(node, since, now, dialect, workspace_id, table))
    return parts


def _attribute_flips(
    cond: AttrCondition,
    types: Mapping[str, AttrType],
    since: Now,
    now: Now,
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
                value.bind(kind, since + ref.seconds), value.bind(kind, now + ref.seconds)
            ),
        )
        for ref in check.values
        if isinstance(ref, TimeRef) and ref.relative
    ]


def _leaving_window(
    cond: EventCondition, since: Now, now: Now, dialect: str, workspace_id: int, table: Table
) -> Bool:
    within = cond.within or 0.0
    left = sa.select(events.c.user_id).where(
        events.c.workspace_id == workspace_id,
        *_event_criteria(cond, now, dialect, window=False),
        events.c.ts.between(since - within, now - within),
    )
    return table.c.user_id.in_(left)
