"""Which attributes and fields a user's writes changed: `changed_names` (a JSON object whose
keys are the names written, merged write after write) holds every name written after
`names_after` (for a new user, when it was made); NULL means not known (a user from before
this revision), and the planner then looks at the user for every campaign. A write an hour
or more after the user's last one starts the names again and moves `names_after` to that
last write. The planner looks at a changed user only for the campaigns whose rules read one
of its names (`store/names.py`, `pipeline/planner.py`).

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, JSONB

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    names = sa.JSON().with_variant(JSONB(), "postgresql")
    after = sa.Float().with_variant(DOUBLE_PRECISION(), "postgresql")
    op.add_column("users", sa.Column("changed_names", names, nullable=True))
    op.add_column("users", sa.Column("names_after", after, nullable=True))


def downgrade() -> None:
    # in place, not by batch (SQLite has DROP COLUMN since 3.35)
    op.drop_column("users", "names_after")
    op.drop_column("users", "changed_names")
