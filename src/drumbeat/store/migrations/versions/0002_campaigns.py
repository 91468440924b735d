"""Campaigns: definitions, memberships, the outbox, batches, the in-app inbox, settings.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from drumbeat.store.schema import AutoId, Epoch, Json, Key

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"], ["workspaces.id"], name=f"fk_{table}_workspace_id_workspaces"
    )


def _ws() -> sa.Column[int]:
    return sa.Column("workspace_id", sa.Integer, nullable=False)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        _ws(),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("updated_at", Epoch, nullable=False),
        sa.Column("watermark", Epoch),
        sa.Column("event_watermark", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("full_pass_at", Epoch),
        sa.PrimaryKeyConstraint("workspace_id", "key", name="pk_campaigns"),
        _fk("campaigns"),
    )
    op.create_table(
        "memberships",
        _ws(),
        sa.Column("campaign_key", sa.String(100), nullable=False),
        sa.Column("user_id", Key, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("position", sa.String(200), nullable=False),
        sa.Column("entry_count", sa.Integer, nullable=False),
        sa.Column("entered_at", Epoch, nullable=False),
        sa.Column("step_started_at", Epoch, nullable=False),
        sa.Column("next_due_at", Epoch),
        sa.Column("last_sent_at", Epoch),
        sa.Column("last_step", sa.String(200)),
        sa.Column("exited_at", Epoch),
        sa.Column("exit_reason", sa.String(32)),
        sa.Column("attributed", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "campaign_key", "user_id", name="pk_memberships"),
        _fk("memberships"),
    )
    op.create_index(
        "ix_memberships_workspace_id_campaign_key_state_next_due_at",
        "memberships",
        ["workspace_id", "campaign_key", "state", "next_due_at"],
    )
    op.create_table(
        "outbox",
        sa.Column("id", AutoId, nullable=False, autoincrement=True),
        _ws(),
        sa.Column("dedupe_key", sa.String(700), nullable=False),
        sa.Column("campaign_key", sa.String(100), nullable=False),
        sa.Column("step_id", sa.String(200), nullable=False),
        sa.Column("user_id", Key, nullable=False),
        sa.Column("entry_count", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("available_at", Epoch, nullable=False),
        sa.Column("lease_until", Epoch),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("sent_at", Epoch),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("last_error", sa.String(1000)),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        _fk("outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index("ix_outbox_status_available_at", "outbox", ["status", "available_at"])
    op.create_index(
        "ix_outbox_workspace_id_user_id_created_at",
        "outbox",
        ["workspace_id", "user_id", "created_at"],
    )
    op.create_table(
        "batches",
        sa.Column("id", AutoId, nullable=False, autoincrement=True),
        _ws(),
        sa.Column("campaign_key", sa.String(100), nullable=False),
        sa.Column("lane", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_ids", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", Epoch, nullable=False),
        sa.Column("lease_until", Epoch),
        sa.Column("fence", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("finished_at", Epoch),
        sa.Column("seconds", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
        _fk("batches"),
    )
    op.create_index("ix_batches_status_lane_id", "batches", ["status", "lane", "id"])
    op.create_table(
        "inbox",
        sa.Column("id", AutoId, nullable=False, autoincrement=True),
        _ws(),
        sa.Column("user_id", Key, nullable=False),
        sa.Column("message_id", sa.String(700), nullable=False),
        sa.Column("campaign_key", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("body", sa.String, nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("read_at", Epoch),
        sa.PrimaryKeyConstraint("id", name="pk_inbox"),
        _fk("inbox"),
        sa.UniqueConstraint("message_id", name="uq_inbox_message_id"),
    )
    op.create_index("ix_inbox_workspace_id_user_id_id", "inbox", ["workspace_id", "user_id", "id"])
    op.create_table(
        "settings",
        _ws(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", Json, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "name", name="pk_settings"),
        _fk("settings"),
    )


def downgrade() -> None:
    for table in ("settings", "inbox", "batches", "outbox", "memberships", "campaigns"):
        op.drop_table(table)
