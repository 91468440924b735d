"""Bring a database to the schema of this version with Alembic (run on every open: cheap when
already there). One process at a time: an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite.

Whether there is anything to do is read without Alembic (the `alembic_version` row against
the newest revision of the versions folder, store/schema_head.py): importing Alembic is a
fifth of a short command's start, and almost every open finds the schema current."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from drumbeat.store.schema_head import MIGRATIONS
from drumbeat.store.schema_head import head as head  # the revision wanted, as before

if TYPE_CHECKING:
    from alembic.config import Config

_LOCK_ID = 0x0D3B_EA7  # any constant shared by all Drumbeat processes


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if found is None else str(found)


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Returns whether the schema changed (False: it was already there)."""
    with engine.connect() as probe:
        if revision == "head" and current(probe) == head():
            return False
    from alembic import command

    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        command.upgrade(_config(conn), revision)
    return True
