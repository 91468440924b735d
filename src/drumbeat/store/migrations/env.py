"""Alembic environment: runs on the connection `drumbeat.store.migrate` passes in."""

import warnings

from alembic import context

from drumbeat.store.schema import ATTRIBUTE_INDEX_PREFIX, in_schema, metadata

# SQLite cannot reflect an expression index; the attribute indexes are left out anyway.
warnings.filterwarnings(
    "ignore", f"Skipped unsupported reflection of expression-based index {ATTRIBUTE_INDEX_PREFIX}"
)
connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    include_object=in_schema,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
