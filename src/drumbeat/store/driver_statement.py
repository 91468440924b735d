"""A statement built once with SQLAlchemy, compiled once for a dialect and run on the
driver's own connection: for a hot statement that does little work in the database, where
SQLAlchemy's execution (events, parameters, the result's set-up) costs more than the
statement itself. The bound values go through their types' bind conversions (in the
compiled order for SQLite's `?`, by name for psycopg's `%(name)s`), and the returned
columns come back through their result conversions (JSON parsed, as SQLAlchemy would),
chosen from the first result's column types as SQLAlchemy chooses them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

Convert = Callable[[Any], Any] | None


class DriverStatement:
    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.defaults: dict[str, Any] = dict(compiled.params)  # the statement's own literals
        self.positional = compiled.positiontup is not None
        names = compiled.positiontup if self.positional else list(compiled.params)
        self.binds: list[tuple[str, Convert]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names or ()
        ]
        self.dialect = dialect
        self.types = [
            column["type"].dialect_impl(dialect)
            for column in statement.returning_column_descriptions
        ]
        self.results: list[Convert] | None = None  # from the first result's description

    def first(self, raw: Any, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run on `raw` (a DB-API connection) with `values` bound; the first row returned,
        converted. Every row is fetched, so the statement has ended (and, in autocommit,
        committed) on return."""
        cursor = raw.execute(self.sql, self.params(values))
        rows = cursor.fetchall()
        return self.converted(rows[0], cursor.description) if rows else None

    def params(self, values: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        """The driver's parameters for `values` (and the statement's own literals)."""
        bound = self.defaults | dict(values)
        converted = [(n, bound[n] if to is None else to(bound[n])) for n, to in self.binds]
        return [value for _, value in converted] if self.positional else dict(converted)

    def converted(self, row: Any, description: Any) -> tuple[Any, ...]:
        """A row the driver returned (its cursor's `description`), as SQLAlchemy returns it."""
        if self.results is None:
            self.results = [
                kind.result_processor(self.dialect, column[1])  # the driver's type code
                for kind, column in zip(self.types, description, strict=True)
            ]
        pairs = zip(row, self.results, strict=True)
        return tuple(value if to is None else to(value) for value, to in pairs)


@lru_cache(maxsize=32)
def driver_statement(statement: Any, dialect: Dialect) -> DriverStatement:
    """`statement` compiled for `dialect`, once."""
    return DriverStatement(statement, dialect)


@contextmanager
def driver_connection(engine: Engine, what: str) -> Iterator[Any]:
    """A pooled connection's driver connection, for the block; the driver's errors raised as
    SQLAlchemy raises them (so `StoreCore.retrying` knows a lost connection), and a
    connection the server has closed dropped from the pool rather than handed out again.
    `what`: the statement, for the error."""
    error = engine.dialect.loaded_dbapi.Error
    with closing(engine.raw_connection()) as pooled:
        raw: Any = pooled.driver_connection
        try:
            yield raw
        except error as exc:
            broken = bool(getattr(raw, "broken", False))  # psycopg's; SQLite has none to lose
            if broken:
                pooled.invalidate(exc)
            raise DBAPIError.instance(
                what, None, exc, error, connection_invalidated=broken
            ) from exc
