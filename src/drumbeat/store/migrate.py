"""Bring a database to the schema of this version with Alembic (run on every open: cheap when
already there). One process at a time: an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite.

Whether there is anything to do is read without Alembic (the `alembic_version` row against
the newest revision of the versions folder): importing Alembic is a fifth of a short
command's start, and almost every open finds the schema current."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x0D3B_EA7  # any constant shared by all Drumbeat processes
_REVISION = re.compile(r'^(down_revision|revision) = "(\w+)"', re.M)


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@cache
def head() -> str | None:
    """The newest revision: the one no other revision names as its parent (the chain is
    linear)."""
    revisions: set[str] = set()
    parents: set[str | None] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(script.read_text(encoding="utf-8")))
        revisions.add(found["revision"])
        parents.add(found.get("down_revision"))
    (newest,) = revisions - parents
    return newest


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
