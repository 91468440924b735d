"""Memberships and outbox rows without a foreign key to workspaces: the key was checked for
every row a batch writes (an RI trigger a row on PostgreSQL, 3.5 µs a row: 1.4 s of server
time a 200,000-user load, whose every user gets a membership and a message). As for users
(revision 0003), nothing is lost: a batch writes them for users of its workspace, which
`StoreCore._require_workspace` checked when they were written, and workspaces are never
deleted.

On SQLite the tables are rebuilt (batch mode), memberships still `WITHOUT ROWID` (0004), the
outbox's partial indexes made again from their SQL.

Revision ID: 0022
Revises: 0021
"""

from typing import Any

from alembic.operations import BatchOperations

from drumbeat.store.rebuilds import rebuilt

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# each table, and its options on SQLite
_TABLES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("memberships", {"sqlite_with_rowid": False}),
    ("outbox", {}),
)


def _key(table: str) -> str:
    return f"fk_{table}_workspace_id_workspaces"


def upgrade() -> None:
    for table, options in _TABLES:

        def drop(batch: BatchOperations, key: str = _key(table)) -> None:
            batch.drop_constraint(key, type_="foreignkey")

        rebuilt(table, drop, **options)


def downgrade() -> None:
    for table, options in _TABLES:

        def create(batch: BatchOperations, key: str = _key(table)) -> None:
            batch.create_foreign_key(key, "workspaces", ["workspace_id"], ["id"])

        rebuilt(table, create, **options)
