"""Batch leases count real time (they counted the store's clock, so two processes whose
virtual clocks differed each saw the other's lease as run out), and a batch records the
worker holding it (`owner`) and why its last holder let go of it (`last_error`): a parent
process releases the batch of a worker child that died at once, and a batch that keeps
killing its workers ends `dead`. Leases taken before this revision counted the other clock:
their batches go back to `pending` (a worker still holding one cannot commit: its fence).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("owner", sa.String(200)))
    op.add_column("batches", sa.Column("last_error", sa.String(1000)))
    op.execute("UPDATE batches SET status = 'pending', lease_until = NULL WHERE status = 'running'")


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("last_error")
        batch.drop_column("owner")
