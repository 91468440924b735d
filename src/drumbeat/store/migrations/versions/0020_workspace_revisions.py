"""A workspace's revision: a number every change to its campaigns (a new version, a status)
moves on, in the change's transaction. A tick reads one small row per workspace and keeps
its compiled programs and campaign rows while the revision (and the attribute types and the
frequency cap, read beside it) stay the same.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workspaces",
        sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    # every workspace with campaigns starts at 1, so that a tick reads them
    op.execute(
        "UPDATE workspaces SET revision = 1 "
        "WHERE id IN (SELECT DISTINCT workspace_id FROM campaigns)"
    )


def downgrade() -> None:
    # in place, not by batch: a batch copies the table and drops the old one, which every
    # table's foreign key to workspaces refuses on SQLite (it has DROP COLUMN since 3.35)
    op.drop_column("workspaces", "revision")
