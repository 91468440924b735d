"""On SQLite, the indexes of `users.created_at` and `last_seen_at` are kept only while a live
rule compares the field (`store/indexes.py` builds them as it builds attribute indexes): in
random key order, they were half of a users import's time. `open_store` syncs the indexes
after this revision, so a live rule that reads them gets its index back at once.
PostgreSQL: nothing (revision 0011 drops them there).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FIELDS = ("created_at", "last_seen_at")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for field in FIELDS:
        op.drop_index(f"ix_users_workspace_id_{field}", "users", if_exists=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for field in FIELDS:
        op.create_index(
            f"ix_users_workspace_id_{field}", "users", ["workspace_id", field], if_not_exists=True
        )
