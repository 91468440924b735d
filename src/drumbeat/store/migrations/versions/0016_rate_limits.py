"""Send rate limits shared by every process of a store: one row a rate-limited channel with
the second it counts and the messages granted in it (`store/rate_limits.py`).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("taken", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("channel", name="pk_rate_limits"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
