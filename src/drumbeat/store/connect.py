"""Engines for the store of record: SQLite in WAL mode, or PostgreSQL through psycopg 3."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from drumbeat.errors import BadSetting, require

SETTING = "DRUMBEAT_DATABASE_URL"
_USE = "use sqlite:///path or postgresql://user@host/database"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` for psycopg 3; refuse databases we don't support."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise BadSetting(SETTING, f"not a database URL: {_hidden(url)!r}; {_USE}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        parsed = parsed.set(drivername="postgresql")
        backend = "postgresql"
    if backend == "postgresql":
        require("psycopg", feature="PostgreSQL", extra="postgres")
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed.render_as_string(hide_password=False)
    raise BadSetting(SETTING, f"unknown database {parsed.drivername!r}; {_USE}")


def create(url: str) -> Engine:
    """An engine for `url`, connected once: a URL that cannot work fails here, in one line
    that says why, rather than in the middle of a command."""
    engine = _engine(normalize_url(url))
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        engine.dispose()
        shown = make_url(url).render_as_string(hide_password=True)
        reason = _sqlite_reason(engine, exc) if engine.dialect.name == "sqlite" else _reason(exc)
        raise BadSetting(SETTING, f"cannot connect to {shown}: {reason}") from None
    return engine


_JSON: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60}, **_JSON)
        _sqlite_setup(engine)
        return engine
    return create_engine(
        url, pool_size=8, max_overflow=8, pool_pre_ping=True, **postgres_options(url)
    )


def postgres_options(url: Any) -> dict[str, Any]:
    """What every PostgreSQL engine of the store is made with: its JSON through orjson, and
    a server that does not answer failing the command in seconds (unless the URL says)."""
    timeout = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": 5}
    return {"connect_args": timeout, **_JSON}


def _reason(exc: DBAPIError) -> str:
    """psycopg's first line, without its preamble: `connection failed: connection to server
    at "…", port … failed: FATAL:  database "x" does not exist` → `database "x" does not
    exist`."""
    first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
    reason = first.rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip()
    return reason[:1].lower() + reason[1:]


def _sqlite_reason(engine: Engine, exc: DBAPIError) -> str:
    path = engine.url.database
    folder = Path(path).resolve().parent if path and path != ":memory:" else None
    if folder is not None and not folder.is_dir():
        return f"no directory {folder}"
    return str(exc.orig)


def _hidden(text: str) -> str:
    """A URL-like string with what looks like a password masked, as SQLAlchemy masks it."""
    return re.sub(r":[^/@]*@", ":***@", text)


# Every SQLite connection's settings (a benchmark's bare floor uses them too).
SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    # A checkpoint (WAL copied into the database, then fsync) in a commit only past 64 MiB
    # of WAL rather than 4 MiB: batches of random user updates dirty thousands of pages,
    # and at the default most commits paid for an fsync.
    "wal_autocheckpoint=16384",
    "busy_timeout=60000",
    "cache_size=-131072",
    "temp_store=MEMORY",
    "foreign_keys=ON",
)


def _sqlite_setup(engine: Engine) -> None:
    """WAL, and transactions SQLAlchemy controls: BEGIN IMMEDIATE for writes so that two
    writers queue on the lock instead of failing on upgrade (pysqlite's own BEGIN is off)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
