"""The attribute indexes as each database holds them (`store/indexes.py` decides which it
wants): read from the catalog, built and dropped.

SQLite builds and drops an index in a write transaction (writers wait for one index at a
time). PostgreSQL builds with CREATE INDEX CONCURRENTLY, outside any transaction (an
autocommit connection), so identify, track and imports go on meanwhile; a build that fails
or is interrupted leaves the index INVALID (`pg_index.indisvalid`): never used by a query,
yet maintained by every write. The catalog read tells such an index from one another
process is building right now (`pg_stat_progress_create_index`), which is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Index
from sqlalchemy.schema import CreateIndex

from drumbeat.store.schema import ATTRIBUTE_INDEX_PREFIX

# valid: queries may use it; invalid: a failed or interrupted build (PostgreSQL), to rebuild;
# building: another process's build in progress (PostgreSQL).
CatalogState = Literal["valid", "invalid", "building"]


@dataclass(frozen=True)
class Catalogued:
    """One attribute index the database holds: its CREATE INDEX statement and state."""

    sql: str
    state: CatalogState


_SQLITE_CATALOG = (
    "SELECT name, sql, 'valid' FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'"
    " AND substr(name, 1, :n) = :prefix"
)
_POSTGRES_CATALOG = """
SELECT c.relname, pg_get_indexdef(i.indexrelid),
       CASE WHEN i.indisvalid THEN 'valid'
            WHEN EXISTS (SELECT FROM pg_stat_progress_create_index p
                         WHERE p.index_relid = i.indexrelid) THEN 'building'
            ELSE 'invalid' END
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'users'::regclass AND left(c.relname, :n) = :prefix
"""


def catalogued(conn: Connection) -> dict[str, Catalogued]:
    """Name → the attribute indexes built (or being built) on `users`."""
    sql = _POSTGRES_CATALOG if conn.dialect.name == "postgresql" else _SQLITE_CATALOG
    rows = conn.execute(
        sa.text(sql), {"n": len(ATTRIBUTE_INDEX_PREFIX), "prefix": ATTRIBUTE_INDEX_PREFIX}
    )
    return {name: Catalogued(definition or "", state) for name, definition, state in rows}


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """A connection outside any transaction (CONCURRENTLY refuses to run inside one)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


def create_concurrently(engine: Engine, index: Index) -> None:
    """CREATE INDEX CONCURRENTLY: two scans of the table while writes go on; it waits for
    the transactions already writing `users` (an open import's) to end first."""
    with autocommit(engine) as conn:
        conn.execute(CreateIndex(index, if_not_exists=True))


def drop_concurrently(engine: Engine, name: str) -> None:
    quoted = engine.dialect.identifier_preparer.quote(name)
    with autocommit(engine) as conn:
        conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {quoted}")


def analyze_users(engine: Engine) -> None:
    """Statistics of the new indexes' expressions: without them the planner guesses an
    equality on an expression selects 0.5% of users, and reads most of the table through
    the index for a value most users have."""
    with autocommit(engine) as conn:
        conn.exec_driver_sql("ANALYZE users")
