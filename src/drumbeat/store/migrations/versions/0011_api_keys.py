"""API keys: one row per key of a workspace, holding only the key's sha256 (`store/keys.py`).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from drumbeat.store.schema import AutoId, Epoch

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # if_not_exists: a store stamped back to an older revision (tests do it) keeps its keys
    op.create_table(
        "api_keys",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("revoked_at", Epoch),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_api_keys_workspace_id_workspaces"
        ),
        sa.UniqueConstraint("hash", name="uq_api_keys_hash"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_api_keys_workspace_id_id", "api_keys", ["workspace_id", "id"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_table("api_keys")
