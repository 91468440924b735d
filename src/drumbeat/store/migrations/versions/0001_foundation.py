"""Foundation: workspaces, users, attribute types, events, and the default workspace.

Revision ID: 0001
Revises:
"""

import time

import sqlalchemy as sa
from alembic import op

from drumbeat.store.schema import AutoId, Epoch, Json, Key

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    workspaces = op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workspaces"),
        sa.UniqueConstraint("name", name="uq_workspaces_name"),
    )
    op.create_table(
        "users",
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("user_id", Key, nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("unsubscribed", sa.Boolean, nullable=False),
        sa.Column("created_at", Epoch),
        sa.Column("last_seen_at", Epoch),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("updated_at", Epoch, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "user_id", name="pk_users"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_users_workspace_id_workspaces"
        ),
    )
    op.create_index("ix_users_workspace_id_updated_at", "users", ["workspace_id", "updated_at"])
    op.create_index("ix_users_workspace_id_created_at", "users", ["workspace_id", "created_at"])
    op.create_index("ix_users_workspace_id_last_seen_at", "users", ["workspace_id", "last_seen_at"])
    op.create_table(
        "attribute_types",
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("declared", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "name", name="pk_attribute_types"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_attribute_types_workspace_id_workspaces"
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", AutoId, nullable=False, autoincrement=True),
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("user_id", Key, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("ts", Epoch, nullable=False),
        sa.Column("properties", Json, nullable=False),
        sa.Column("message_id", sa.String(255)),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_events_workspace_id_workspaces"
        ),
    )
    op.create_index(
        "ix_events_workspace_id_user_id_name_ts",
        "events",
        ["workspace_id", "user_id", "name", "ts"],
    )
    op.create_index("ix_events_workspace_id_name_ts", "events", ["workspace_id", "name", "ts"])
    op.create_index(
        "ix_events_workspace_id_message_id", "events", ["workspace_id", "message_id"], unique=True
    )
    op.bulk_insert(workspaces, [{"name": "default", "created_at": time.time()}])


def downgrade() -> None:
    for table in ("events", "attribute_types", "users", "workspaces"):
        op.drop_table(table)
