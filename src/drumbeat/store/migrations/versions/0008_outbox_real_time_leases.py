"""Outbox leases and retries count real time; the store's (virtual) clock only says when a
message is due. `retry_at` (real) holds a transient failure's next try, `fence` moves on with
every claim so a claim that lost its rows cannot record their results. Rows caught `sending`
hold a lease on the old clock: it is let go, so they are claimed again at once.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from drumbeat.store.schema import Epoch

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("retry_at", Epoch))
        batch.add_column(sa.Column("fence", sa.Integer, nullable=False, server_default="0"))
    op.execute("UPDATE outbox SET lease_until = 0 WHERE status = 'sending'")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("fence")
        batch.drop_column("retry_at")
