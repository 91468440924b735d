"""An outbox row being sent records the process holding its claim (`owner`: host, pid and a
token), so that a run started again after a kill lets go of the rows its dead predecessor
was sending at once, instead of waiting out their lease (real minutes).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("owner", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("owner")
