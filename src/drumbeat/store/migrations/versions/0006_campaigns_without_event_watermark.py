"""Campaigns lose `event_watermark`: entry on an event reads the events received since the
campaign's watermark (`events.received_at`, revision 0005) instead of those past an event
id, which on PostgreSQL could skip an event whose transaction committed late.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("event_watermark")


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(
            sa.Column("event_watermark", sa.BigInteger, nullable=False, server_default="0")
        )
