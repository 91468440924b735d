"""Indexes for the attributes that live rules read: expression indexes on `users`, and the
time fields (`created_at`, `last_seen_at`) alike.

A custom attribute lives in the `attributes` JSON column, and SQLite reads it with the
expression the rule compiler emits (`rules/sql_values.py`: `json_extract(attributes,
'$."plan"')`, `json_type(…)` for booleans). An index on (workspace_id, that very expression)
lets the planner find an audience through the index instead of parsing every user's JSON;
SQLite matches an index to a query by comparing expressions, so the expression is built by
the same code, never written out a second time.

`sync` keeps the set in step with the rules of live campaigns (active or paused, current
version, every workspace: audience, goal, wait_until and branch conditions): it builds the
missing indexes, drops the unused ones, then refreshes the planner's statistics. It runs
after `campaign apply` and status changes. Index names are `ix_users_attr_<slug>_<hash>`,
the hash of the indexed expression: names stay short and safe whatever the attribute is
called, and an expression the compiler changes becomes a new index. Each index makes user
upserts a little slower (one more entry to maintain per write), so only compared
attributes get one: a condition that only tests `exists`, or that cannot match, reads no
value an index could hold.

The time fields are columns, indexed the same way on SQLite (`ix_users_attr_created_at_…`, on
(workspace_id, created_at)) only while a live rule compares them ("created 3 days ago", "not
seen for 21 days": `rules/flips.py` finds the users time moved across such a bound by a range
on that index). Their values come in random order, so each entry costs a random insert: the
two of them were half of a users import's SQLite time (revision 0007 dropped the indexes the
schema kept on them always).

PostgreSQL keeps none: `sync` is a no-op there. The compiled expressions (`attributes ->>
'plan'`, `attributes -> 'seats'`) could use such indexes, but its parallel scan already
meets the count target (0.28 s at 1M users), and on the benchmark audience (each condition
true for 55–70% of users) an index changes nothing; indexes would help selective rules, at
the price of a build that (unless CONCURRENTLY, outside a transaction) blocks every
identify and track for its duration, and of indexes Alembic's schema comparison would want
to drop. Revisit with CREATE INDEX CONCURRENTLY when PostgreSQL audiences outgrow the scan.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection, Index, MetaData, Table, select
from sqlalchemy.schema import CreateIndex

from drumbeat import metrics
from drumbeat.model.attributes import STANDARD_FIELDS, AttrType
from drumbeat.model.campaign import Branch, Campaign, WaitUntil, parse_campaign, walk_steps
from drumbeat.model.rules import AttrCondition, Op, Rule
from drumbeat.rules.resolve import resolve
from drumbeat.rules.sql_values import json_value
from drumbeat.store.core import ATTRIBUTE_INDEX_PREFIX, StoreCore
from drumbeat.store.schema import campaigns, users, workspaces

LIVE_STATUSES = ("active", "paused")
# The standard fields kept in columns that live rules may compare: indexed like attributes
# (on SQLite; PostgreSQL keeps both indexes always, `schema.py`).
TIME_FIELDS = ("created_at", "last_seen_at")
# The attribute (or time field) in a built index's SQL.
_PATH = re.compile(r"""'\$\."([^"]*)"'|\(workspace_id, (""" + "|".join(TIME_FIELDS) + r")\)")


@dataclass(frozen=True)
class AttributeIndex:
    """One attribute index: its name, the attribute and expression it holds, the live
    campaigns (`workspace/key`) whose rules read it, whether it is built. For a built index
    no live rule reads (`sync` drops it), `campaigns` is empty, `expression` is its SQL and
    `attribute` is read back from that (None if it cannot be)."""

    name: str
    attribute: str | None
    expression: str
    campaigns: tuple[str, ...]
    built: bool


@dataclass(frozen=True)
class IndexSync:
    created: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


def campaign_rules(campaign: Campaign) -> Iterator[Rule]:
    """Every rule a campaign evaluates on users: audience (also its exit rule), goal,
    wait_until and branch conditions."""
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
    """Mixed into Store: the attribute indexes (SQLite only, see the module's docstring)."""

    def attribute_indexes(self) -> list[AttributeIndex]:
        """The indexes live rules want and the ones built, by attribute then name."""
        if self.dialect != "sqlite":
            return []
        wanted = self._wanted_indexes()
        with self.engine.connect() as conn:
            built = _built_indexes(conn)
        found = [
            AttributeIndex(
                name, w.attribute, w.expression, tuple(sorted(w.campaigns)), name in built
            )
            for name, w in wanted.items()
        ]
        for name, sql in built.items():
            if name not in wanted:
                found.append(AttributeIndex(name, _attribute_of(sql), sql, (), True))
        return sorted(found, key=lambda ix: (ix.attribute or "", ix.name))

    def sync_attribute_indexes(self) -> IndexSync:
        """Build the indexes live rules want, drop the others, then refresh the planner's
        statistics (only when something changed). Each build is a transaction of its own
        (writers wait for one index at a time); a no-op on PostgreSQL."""
        if self.dialect != "sqlite":
            return IndexSync()
        wanted = self._wanted_indexes()
        with self.engine.connect() as conn:
            built = _built_indexes(conn)
        created = sorted(wanted.keys() - built.keys())
        dropped = sorted(built.keys() - wanted.keys())
        quote = self.engine.dialect.identifier_preparer.quote
        for name in created:
            with metrics.timed("store.create_attribute_index"), self.writing() as conn:
                conn.execute(CreateIndex(wanted[name].index, if_not_exists=True))
        for name in dropped:
            with self.writing() as conn:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {quote(name)}")
        if created or dropped:
            self.refresh_statistics()
        return IndexSync(tuple(created), tuple(dropped))

    def _wanted_indexes(self) -> dict[str, _Wanted]:
        """Index name → what it holds, for every attribute a live campaign's rule compares."""
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
            index = Index(name, table.c.workspace_id, value)
            wanted[name] = _Wanted(attribute, index, expression, set(readers))
        return wanted


def _attribute_of(sql: str) -> str | None:
    """The attribute or time field a built index holds, read back from its SQL."""
    path = _PATH.search(sql)
    if path is None:
        return None
    return path.group(2) or path.group(1).replace("''", "'")


def _built_indexes(conn: Connection) -> dict[str, str]:
    """Name → CREATE INDEX statement of the attribute indexes built on SQLite."""
    rows = conn.execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'"
            " AND substr(name, 1, :n) = :prefix"
        ),
        {"n": len(ATTRIBUTE_INDEX_PREFIX), "prefix": ATTRIBUTE_INDEX_PREFIX},
    )
    return {name: sql or "" for name, sql in rows}


__all__ = ["AttributeIndex", "AttributeIndexStore", "IndexSync", "campaign_rules"]
