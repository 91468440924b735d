"""Suppressions: the sha256 of each address never to mail again (an erased user's, a hard
bounce's, a complaint's), per workspace (`store/erasure.py`).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from drumbeat.store.schema import Epoch

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "address_hash", name="pk_suppressions"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_suppressions_workspace_id_workspaces"
        ),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
