"""Engines for the store of record: SQLite in WAL mode, or PostgreSQL through psycopg 3."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from drumbeat.errors import InvalidInput, require


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` for psycopg 3; refuse databases we don't support."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgres":
        parsed = parsed.set(drivername="postgresql")
        backend = "postgresql"
    if backend == "postgresql":
        require("psycopg", feature="PostgreSQL", extra="postgres")
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.render_as_string(hide_password=False)
    raise InvalidInput(
        f"database URL {parsed.drivername!r}: use sqlite:///… or postgresql://…",
        what="DRUMBEAT_DATABASE_URL",
    )


def create(url: str) -> Engine:
    url = normalize_url(url)
    kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)
        _sqlite_setup(engine)
        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, **kwargs)


def _sqlite_setup(engine: Engine) -> None:
    """WAL, and transactions SQLAlchemy controls: BEGIN IMMEDIATE for writes so that two
    writers queue on the lock instead of failing on upgrade (pysqlite's own BEGIN is off)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            # A checkpoint (WAL copied into the database, then fsync) every 64 MiB of WAL
            # rather than every 4 MiB: batches of random user updates dirty thousands of
            # pages, and at the default most commits paid for an fsync.
            "wal_autocheckpoint=16384",
            "busy_timeout=60000",
            "cache_size=-131072",
            "temp_store=MEMORY",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
