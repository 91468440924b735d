"""Users without a foreign key to workspaces: the key was checked for every user written (an
RI trigger a row on PostgreSQL, a fifth of a bulk upsert's server time); each write of users
checks its workspace once instead (`StoreCore._require_workspace`). Workspaces are never
deleted.

On SQLite the table is rebuilt (batch mode): expression indexes, which the rebuild cannot
carry over (store/indexes.py keeps some on `users`), are created again from their SQL.

Revision ID: 0003
Revises: 0002
"""

import warnings
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEY = "fk_users_workspace_id_workspaces"
_INDEXES = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'"


def _rebuilt(change: Callable[[BatchOperations], object]) -> None:
    """Run `change(batch)` on users, keeping every index the table had."""
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    indexes = conn.execute(sa.text(_INDEXES)).all() if sqlite else []
    with warnings.catch_warnings():  # those it cannot read are made again below
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table("users") as batch:
            change(batch)
    if sqlite:
        kept = {name for (name,) in conn.execute(sa.text("SELECT name FROM sqlite_master"))}
        for name, sql in indexes:
            if sql is not None and name not in kept:
                conn.execute(sa.text(sql))


def upgrade() -> None:
    _rebuilt(lambda batch: batch.drop_constraint(_KEY, type_="foreignkey"))


def downgrade() -> None:
    _rebuilt(lambda batch: batch.create_foreign_key(_KEY, "workspaces", ["workspace_id"], ["id"]))
