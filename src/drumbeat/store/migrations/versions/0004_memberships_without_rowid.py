"""Memberships stored by their key (SQLite `WITHOUT ROWID`): a member is found and updated
in one b-tree instead of two (the primary key's index, then the table by rowid), which
halves the pages a batch of members due at random reads and dirties. PostgreSQL: nothing.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _rebuild(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    kwargs = {"sqlite_with_rowid": with_rowid}
    with op.batch_alter_table("memberships", recreate="always", table_kwargs=kwargs):
        pass


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
