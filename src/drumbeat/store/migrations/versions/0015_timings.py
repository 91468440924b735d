"""Timings: every process's query and stage timings, per minute, workspace, kind and name,
with fixed log buckets (one column each) that an upsert adds up, so `drumbeat stats`
merges them across processes and machines exactly.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from drumbeat.store.schema import Epoch

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BUCKETS = 96  # drumbeat.histogram.BUCKETS when this revision was written


def upgrade() -> None:
    op.create_table(
        "timings",
        sa.Column("minute", Epoch, nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", Epoch, nullable=False),
        sa.Column("maximum", Epoch, nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        *(sa.Column(f"b{i:02d}", sa.Integer(), nullable=False) for i in range(BUCKETS)),
        sa.PrimaryKeyConstraint("minute", "workspace_id", "kind", "name", name="pk_timings"),
    )


def downgrade() -> None:
    op.drop_table("timings")
