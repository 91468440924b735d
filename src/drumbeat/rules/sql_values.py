"""How SQL reads one stored value: a typed column (standard fields) or a key of a JSON column
(custom attributes, event properties) on SQLite or PostgreSQL.

Each gives: whether the value is present (JSON null counts as missing), a guard on its runtime
type, the operand to compare, and constants bound in the operand's form. JSON keys and paths
are rendered as literals (names are validated: no quotes or backslashes) so expression
indexes on them can match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.dialects.postgresql import JSONB

from drumbeat.model.attributes import AttrType, Value

Bool: TypeAlias = ColumnElement[bool]
# A constant to compare with: a value, or an expression of a query parameter (a relative
# time is `now` plus its offset, bound when the query runs: rules/sql.py `NOW`).
Operand: TypeAlias = Value | ColumnElement[Any]


def _literal(value: Operand) -> ColumnElement[Any]:
    return value if isinstance(value, ColumnElement) else sa.literal(value)


_SQLITE_TYPES: dict[AttrType, tuple[str, ...]] = {
    AttrType.STRING: ("text",),
    AttrType.NUMBER: ("integer", "real"),
    AttrType.TIMESTAMP: ("integer", "real"),
    AttrType.BOOLEAN: ("true", "false"),
}
_POSTGRES_TYPES: dict[AttrType, str] = {
    AttrType.STRING: "string",
    AttrType.NUMBER: "number",
    AttrType.TIMESTAMP: "number",
    AttrType.BOOLEAN: "boolean",
}


class StoredValue(Protocol):
    """One value as SQL reads it; every expression may be NULL when the value is missing."""

    @property
    def dialect(self) -> str: ...

    def present(self) -> Bool: ...

    def absent(self) -> Bool:
        """Never NULL."""
        ...

    def guard(self, kind: AttrType) -> Bool: ...

    def operand(self, kind: AttrType) -> ColumnElement[Any]: ...

    def bind(self, kind: AttrType, value: Operand) -> ColumnElement[Any]: ...


@dataclass(frozen=True)
class ColumnValue:
    """A standard field: a typed column, NULL when unset."""

    column: ColumnElement[Any]
    dialect: str

    def present(self) -> Bool:
        return self.column.is_not(None)

    def absent(self) -> Bool:
        return self.column.is_(None)

    def guard(self, kind: AttrType) -> Bool:
        return sa.true()  # the column's type is the field's type

    def operand(self, kind: AttrType) -> ColumnElement[Any]:
        return self.column

    def bind(self, kind: AttrType, value: Operand) -> ColumnElement[Any]:
        return _literal(value)


@dataclass(frozen=True)
class SqliteJson:
    """`json_type` / `json_extract` of one key; booleans compare as their json_type."""

    column: ColumnElement[Any]
    name: str
    dialect: str = "sqlite"

    def _path(self) -> ColumnElement[str]:
        return sa.literal(f'$."{self.name}"', sa.Text, literal_execute=True)

    def _type(self) -> ColumnElement[Any]:
        return sa.func.json_type(self.column, self._path())

    def present(self) -> Bool:
        return self._type() != "null"

    def absent(self) -> Bool:
        return sa.func.coalesce(self._type(), "null") == "null"

    def guard(self, kind: AttrType) -> Bool:
        names = _SQLITE_TYPES[kind]
        return self._type() == names[0] if len(names) == 1 else self._type().in_(names)

    def operand(self, kind: AttrType) -> ColumnElement[Any]:
        if kind is AttrType.BOOLEAN:
            return self._type()
        return sa.func.json_extract(self.column, self._path())

    def bind(self, kind: AttrType, value: Operand) -> ColumnElement[Any]:
        if kind is AttrType.BOOLEAN:
            return sa.literal("true" if value else "false")
        return _literal(value)


@dataclass(frozen=True)
class PostgresJson:
    """`->` / `->>` of one key of a jsonb column; numbers compare as jsonb (exact, no casts)."""

    column: ColumnElement[Any]
    name: str
    dialect: str = "postgresql"

    def _key(self) -> ColumnElement[str]:
        return sa.literal(self.name, sa.Text, literal_execute=True)

    def _element(self) -> ColumnElement[Any]:
        return self.column.op("->", return_type=JSONB)(self._key())

    def _type(self) -> ColumnElement[Any]:
        return sa.func.jsonb_typeof(self._element())

    def present(self) -> Bool:
        return self._type() != "null"

    def absent(self) -> Bool:
        return sa.func.coalesce(self._type(), "null") == "null"

    def guard(self, kind: AttrType) -> Bool:
        return self._type() == _POSTGRES_TYPES[kind]

    def operand(self, kind: AttrType) -> ColumnElement[Any]:
        if kind in (AttrType.NUMBER, AttrType.TIMESTAMP):
            return self._element()
        return self.column.op("->>", return_type=sa.Text)(self._key())

    def bind(self, kind: AttrType, value: Operand) -> ColumnElement[Any]:
        if isinstance(value, ColumnElement):  # a time from a parameter: a jsonb number
            return sa.func.to_jsonb(value, type_=JSONB)
        if kind in (AttrType.NUMBER, AttrType.TIMESTAMP):
            return sa.cast(sa.literal(json.dumps(value), sa.Text), JSONB)
        if kind is AttrType.BOOLEAN:
            return sa.literal("true" if value else "false")
        return sa.literal(value, sa.Text)


JsonValue: TypeAlias = SqliteJson | PostgresJson


def json_value(column: ColumnElement[Any], name: str, dialect: str) -> JsonValue:
    """The value under key `name` of JSON `column` for `dialect`."""
    if dialect == "postgresql":
        return PostgresJson(column, name)
    return SqliteJson(column, name)
