"""Events record when they were received (`received_at`, indexed by workspace): the planner
finds the users with new events there, so writing an event no longer rewrites its user's row
(`updated_at`) and that row's index entries, which doubled the pages a batch of events wrote.
Events from before this revision have none; their users were marked changed when they came.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from drumbeat.store.schema import Epoch

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INDEX = "ix_events_workspace_id_received_at"


def upgrade() -> None:
    op.add_column("events", sa.Column("received_at", Epoch))
    op.create_index(_INDEX, "events", ["workspace_id", "received_at"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("received_at")
