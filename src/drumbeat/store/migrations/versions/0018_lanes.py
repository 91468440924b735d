"""Lanes and the governor: each campaign's lane and why, its measured cost and its ramp
(`campaign_lanes`); batches get a `turn`, the claim's order, so that batches are handed out
round-robin across workspaces and campaigns rather than first planned, first run.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

from drumbeat.store.schema import Epoch

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("turn", sa.Float(), nullable=False, server_default="0"))
    op.create_index("ix_batches_status_lane_turn_id", "batches", ["status", "lane", "turn", "id"])
    op.drop_index("ix_batches_status_lane_id", "batches")
    op.create_table(
        "campaign_lanes",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("campaign_key", sa.String(100), nullable=False),
        sa.Column("lane", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("cost", sa.Float()),
        sa.Column("measured", sa.Integer(), nullable=False),
        sa.Column("measured_through", sa.BigInteger(), nullable=False),
        sa.Column("ramp", sa.Integer()),
        sa.Column("updated_at", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "campaign_key", name="pk_campaign_lanes"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name="fk_campaign_lanes_workspace_id_workspaces",
        ),
    )


def downgrade() -> None:
    op.drop_table("campaign_lanes")
    op.create_index("ix_batches_status_lane_id", "batches", ["status", "lane", "id"])
    op.drop_index("ix_batches_status_lane_turn_id", "batches")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("turn")
