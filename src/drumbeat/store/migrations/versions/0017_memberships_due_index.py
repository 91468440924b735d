"""The members due are found for all the campaigns of a workspace at once: one index range
on (workspace_id, state, next_due_at), the campaign's key beside it, replaces the per-campaign
index (workspace_id, campaign_key, state, next_due_at) that took one query per campaign a
tick (`drumbeat bench idle`).

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

OLD = "ix_memberships_workspace_id_campaign_key_state_next_due_at"
OLD_COLUMNS = ["workspace_id", "campaign_key", "state", "next_due_at"]
NEW = "ix_memberships_workspace_id_state_next_due_at_campaign_key"
NEW_COLUMNS = ["workspace_id", "state", "next_due_at", "campaign_key"]


def upgrade() -> None:
    op.create_index(NEW, "memberships", NEW_COLUMNS)
    op.drop_index(OLD, "memberships")


def downgrade() -> None:
    op.create_index(OLD, "memberships", OLD_COLUMNS)
    op.drop_index(NEW, "memberships")
