"""Users without a foreign key to workspaces: the key was checked for every user written (an
RI trigger a row on PostgreSQL, a fifth of a bulk upsert's server time); each write of users
checks its workspace once instead (`StoreCore._require_workspace`). Workspaces are never
deleted.

On SQLite the table is rebuilt (batch mode): expression indexes, which the rebuild cannot
carry over (store/indexes.py keeps some on `users`), are created again from their SQL.

Revision ID: 0003
Revises: 0002
"""

from drumbeat.store.rebuilds import rebuilt

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEY = "fk_users_workspace_id_workspaces"


def upgrade() -> None:
    rebuilt("users", lambda batch: batch.drop_constraint(_KEY, type_="foreignkey"))


def downgrade() -> None:
    rebuilt(
        "users",
        lambda batch: batch.create_foreign_key(_KEY, "workspaces", ["workspace_id"], ["id"]),
    )
