"""Indexes for the attributes that live rules read: expression indexes on `users`, and the
time fields (`created_at`, `last_seen_at`) alike, on SQLite and PostgreSQL.

A custom attribute lives in the `attributes` JSON column, and SQL reads it with the
expression the rule compiler emits (`rules/sql_values.py`: on SQLite `json_extract(attributes,
'$."plan"')`, `json_type(…)` for booleans; on PostgreSQL `attributes ->> 'plan'`, `attributes
-> 'seats'` for numbers, compared as jsonb). An index on (workspace_id, that very expression)
lets the planner find an audience through the index instead of reading every user's JSON;
both databases match an index to a query by comparing expressions, so the expression is
built by the same code, never written out a second time.

`sync` keeps the set in step with the rules of live campaigns (active or paused, current
version, every workspace: audience, goal, wait_until and branch conditions): it builds the
missing indexes, drops the unused ones, then refreshes the planner's statistics. It runs
after `campaign apply`, status changes and a migration. Index names are
`ix_users_attr_<slug>_<hash>`, the hash of the indexed expression: names stay short and
safe whatever the attribute is called, and an expression the compiler changes becomes a new
index. Each index makes user upserts a little slower (one more entry to maintain per write),
so only compared attributes get one: a condition that only tests `exists`, or that cannot
match, reads no value an index could hold.

The time fields are columns, indexed the same way (`ix_users_attr_created_at_…`, on
(workspace_id, created_at)) only while a live rule compares them ("created 3 days ago", "not
seen for 21 days": `rules/flips.py` finds the users time moved across such a bound by a range
on that index). Their values come in random order, so each entry costs a random insert: the
two of them were half of a users import's SQLite time and a seventh of its PostgreSQL time
(revisions 0007 and 0012 dropped the indexes the schema kept on them always).

How each database builds, drops and lists them is `indexes_catalog.py`: on PostgreSQL
CONCURRENTLY, outside any transaction, so identify and track go on while an index is built,
and an INVALID index a failed build left is rebuilt by the next sync. Since no revision makes
them, Alembic's schema comparison leaves them out (`schema.in_schema`). A rule that reads
most users still scans the table: the planner, with the statistics `sync` refreshes, picks
the index for selective rules. PostgreSQL compares strings in byte order (COLLATE "C") for
`lt`/`gt`, an expression these indexes do not hold: only equality, `in` and number and time
ranges use them there.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Index, MetaData, Table, select
from sqlalchemy.schema import CreateIndex

from drumbeat import metrics
from drumbeat.model.attributes import STANDARD_FIELDS, AttrType
from drumbeat.store.core import StoreCore
from drumbeat.store.indexes_catalog import (
    CatalogState,
    Catalogued,
    analyze_users,
    catalogued,
    create_concurrently,
    drop_concurrently,
)
from drumbeat.store.schema import ATTRIBUTE_INDEX_PREFIX, campaigns, users, workspaces

if TYPE_CHECKING:  # the campaign model and the rule compiler load only when indexes sync:
    from drumbeat.model.campaign import Campaign  # a short command opening the store skips them
    from drumbeat.model.rules import Rule

LIVE_STATUSES = ("active", "paused")
# The standard fields kept in columns that live rules may compare: indexed like attributes.
TIME_FIELDS = ("created_at", "last_seen_at")
# The attribute (or time field) in a built index's SQL: SQLite's JSON path, PostgreSQL's key
# (`pg_get_indexdef`: `(attributes ->> 'plan'::text)`), or the column.
_PATH = re.compile(
    r"""'\$\."(?P<path>[^"]*)"'|\(attributes ->>? '(?P<key>(?:[^']|'')*)'::text\)"""
    r"|\(workspace_id, (?P<field>" + "|".join(TIME_FIELDS) + r")\)"
)


@dataclass(frozen=True)
class AttributeIndex:
    """One attribute index: its name, the attribute and expression it holds, the live
    campaigns (`workspace/key`) whose rules read it, its state in the catalog (None: not
    built). For a built index no live rule reads (`sync` drops it), `campaigns` is empty,
    `expression` is its SQL and `attribute` is read back from that (None if it cannot be)."""

    name: str
    attribute: str | None
    expression: str
    campaigns: tuple[str, ...]
    catalog: CatalogState | None

    @property
    def built(self) -> bool:
        """Built and valid: queries may use it."""
        return self.catalog == "valid"

    @property
    def state(self) -> str:
        """built, unused (no live rule reads it), missing, invalid (a failed or interrupted
        build: `sync` rebuilds it), building (by another process right now)."""
        if self.catalog is None:
            return "missing"
        if self.catalog != "valid":
            return self.catalog
        return "built" if self.campaigns else "unused"


@dataclass(frozen=True)
class IndexSync:
    created: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()  # found INVALID, dropped and built again


def campaign_rules(campaign: Campaign) -> Iterator[Rule]:
    """Every rule a campaign evaluates on users: audience (also its exit rule), goal,
    wait_until and branch conditions."""
    from drumbeat.model.campaign import Branch, WaitUntil, walk_steps

    yield campaign.audience
    if campaign.goal is not None:
        yield campaign.goal.rule
    for _, _, step in walk_steps(campaign.steps):
        if isinstance(step, WaitUntil):
            yield step.wait_until.rule
        elif isinstance(step, Branch):
            yield step.branch.if_


def compared_attributes(
    rule: Rule, types: Mapping[str, AttrType]
) -> Iterator[tuple[str, AttrType]]:
    """(custom attribute or time field, type it is read as) for each condition of `rule` the
    SQL compiler turns into a comparison of the attribute's value (see
    `rules.sql._condition`)."""
    from drumbeat.model.rules import AttrCondition, Op
    from drumbeat.rules.resolve import resolve

    for _, node in rule.walk():
        if not isinstance(node, AttrCondition) or (
            node.attr in STANDARD_FIELDS and node.attr not in TIME_FIELDS
        ):
            continue
        check = resolve(node, types)
        if check.constant is None and check.op is not Op.EXISTS and check.type is not None:
            yield node.attr, check.type


def _stand_in() -> Table:
    """`users` as far as an index needs it, in a MetaData of its own: an Index on the schema's
    own table would join `schema.metadata` (and what Alembic compares the database with)."""
    return Table(
        "users",
        MetaData(),
        sa.Column("workspace_id", sa.Integer),
        sa.Column("attributes", users.c.attributes.type),
        *(sa.Column(field, users.c[field].type) for field in TIME_FIELDS),
    )


def _slug(attribute: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", attribute.lower()).strip("_")[:24] or "attr"


@dataclass
class _Wanted:
    attribute: str
    index: Index
    expression: str
    campaigns: set[str]


class AttributeIndexStore(StoreCore):
    """Mixed into Store: the attribute indexes (see the module's docstring)."""

    def attribute_indexes(self) -> list[AttributeIndex]:
        """The indexes live rules want and the ones built, by attribute then name."""
        wanted = self._wanted_indexes()
        with self.engine.connect() as conn:
            built = catalogued(conn)
        found = [
            AttributeIndex(
                name,
                w.attribute,
                w.expression,
                tuple(sorted(w.campaigns)),
                _state(built, name),
            )
            for name, w in wanted.items()
        ]
        for name, ix in built.items():
            if name not in wanted:
                found.append(AttributeIndex(name, _attribute_of(ix.sql), ix.sql, (), ix.state))
        return sorted(found, key=lambda ix: (ix.attribute or "", ix.name))

    def sync_attribute_indexes(self) -> IndexSync:
        """Build the indexes live rules want (again, for an invalid one), drop the others,
        then refresh the planner's statistics (only when something changed). An index
        another process is building is left to it."""
        wanted = self._wanted_indexes()
        with self.engine.connect() as conn:
            built = catalogued(conn)
        created = sorted(wanted.keys() - built.keys())
        rebuilt = sorted(name for name in wanted if _state(built, name) == "invalid")
        dropped = sorted(built.keys() - wanted.keys())
        for name in rebuilt:
            self._drop_attribute_index(name)
        for name in rebuilt + created:
            with metrics.timed("store.create_attribute_index"):
                self._create_attribute_index(wanted[name].index)
        for name in dropped:
            self._drop_attribute_index(name)
        if self.dialect == "postgresql" and (created or rebuilt):
            analyze_users(self.engine)
        elif self.dialect == "sqlite" and (created or dropped):
            self.refresh_statistics()
        return IndexSync(tuple(created), tuple(dropped), tuple(rebuilt))

    def _create_attribute_index(self, index: Index) -> None:
        if self.dialect == "postgresql":
            create_concurrently(self.engine, index)
            return
        with self.writing() as conn:
            conn.execute(CreateIndex(index, if_not_exists=True))

    def _drop_attribute_index(self, name: str) -> None:
        if self.dialect == "postgresql":
            drop_concurrently(self.engine, name)
            return
        quoted = self.engine.dialect.identifier_preparer.quote(name)
        with self.writing() as conn:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {quoted}")

    def _wanted_indexes(self) -> dict[str, _Wanted]:
        """Index name → what it holds, for every attribute a live campaign's rule compares."""
        from drumbeat.model.campaign import parse_campaign
        from drumbeat.rules.sql_values import json_value

        query = (
            select(workspaces.c.name, campaigns.c.workspace_id, campaigns.c.key)
            .add_columns(campaigns.c.definition)
            .join(workspaces, workspaces.c.id == campaigns.c.workspace_id)
            .where(campaigns.c.status.in_(LIVE_STATUSES))
            .order_by(campaigns.c.workspace_id, campaigns.c.key)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        reads: dict[tuple[str, AttrType], set[str]] = defaultdict(set)
        types: dict[int, dict[str, AttrType]] = {}
        for ws_name, ws, key, definition in rows:
            if ws not in types:
                types[ws] = self.attribute_types(ws)
            for rule in campaign_rules(parse_campaign(definition)):
                for read in compared_attributes(rule, types[ws]):
                    reads[read].add(f"{ws_name}/{key}")
        table = _stand_in()
        wanted: dict[str, _Wanted] = {}
        for (attribute, kind), readers in reads.items():
            value = (
                table.c[attribute]
                if attribute in TIME_FIELDS
                else json_value(table.c.attributes, attribute, self.dialect).operand(kind)
            )
            expression = str(
                value.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True})
            )
            digest = hashlib.sha256(expression.encode()).hexdigest()[:10]
            name = f"{ATTRIBUTE_INDEX_PREFIX}{_slug(attribute)}_{digest}"
            if name in wanted:  # two types read through one expression (string and number)
                wanted[name].campaigns |= readers
                continue
            index = Index(name, table.c.workspace_id, value, postgresql_concurrently=True)
            wanted[name] = _Wanted(attribute, index, expression, set(readers))
        return wanted


def _state(built: Mapping[str, Catalogued], name: str) -> CatalogState | None:
    return built[name].state if name in built else None


def _attribute_of(sql: str) -> str | None:
    """The attribute or time field a built index holds, read back from its SQL."""
    found = _PATH.search(sql)
    if found is None:
        return None
    if found["field"]:
        return found["field"]
    return (found["path"] or found["key"]).replace("''", "'")


__all__ = ["AttributeIndex", "AttributeIndexStore", "IndexSync", "campaign_rules"]
