"""A table's constraints changed by a migration on both databases: in place on PostgreSQL;
on SQLite, which cannot alter a constraint, by Alembic's batch mode (the table rebuilt),
every index the table had made again as it was (batch mode drops those it cannot read, such
as expression indexes, and may read a partial index without its WHERE)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

_INDEXES = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :table"


def rebuilt(table: str, change: Callable[[Any], object], **sqlite_kwargs: Any) -> None:
    """Run `change(batch)` on `table` (a migration's `op.batch_alter_table`), keeping every
    index it had; `sqlite_kwargs`: the rebuilt SQLite table's options (`sqlite_with_rowid`)."""
    from alembic import op

    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    indexes = conn.execute(sa.text(_INDEXES), {"table": table}).all() if sqlite else []
    with warnings.catch_warnings():  # those it cannot read are made again below
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table(table, table_kwargs=sqlite_kwargs) as batch:
            change(batch)
    if sqlite:
        found = conn.execute(sa.text(_INDEXES), {"table": table}).all()
        now: dict[str, str | None] = {name: sql for name, sql in found}
        for name, sql in indexes:
            if sql is not None and now.get(name) != sql:
                conn.execute(sa.text(f'DROP INDEX IF EXISTS "{name}"'))
                conn.execute(sa.text(sql))
