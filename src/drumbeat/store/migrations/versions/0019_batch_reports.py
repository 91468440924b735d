"""A batch keeps what its run did (members changed, users entered, messages queued): a
worker of the distributed shape reports through the store, not through the broker (Celery
runs without a result backend), and the scheduler reads the reports back.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

COLUMNS = ("changed", "entered", "messages")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("batches", sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as table:
        for name in reversed(COLUMNS):
            table.drop_column(name)
