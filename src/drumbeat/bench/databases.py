"""Fresh PostgreSQL databases for a benchmark, on the server of a URL it was given."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def fresh_database(url: str, label: str, *, template: str | None = None) -> Iterator[str]:
    """A new database on `url`'s server, called after `url`'s (`NAME_LABEL_…`; the URL's
    user needs CREATEDB), empty or a copy of `template` (a URL of a database on the same
    server that no one is connected to); its URL. Dropped at the end."""
    import psycopg
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from drumbeat.errors import InvalidInput

    try:
        server = make_url(url)
    except (ArgumentError, ValueError):
        server = None
    if server is None or server.get_backend_name() not in ("postgresql", "postgres"):
        raise InvalidInput(
            "not a PostgreSQL URL: use postgresql://user@host/database", what="--postgres"
        )
    database = f"{(server.database or 'drumbeat')[:30]}_{label}_{uuid.uuid4().hex[:8]}"
    copy = f' TEMPLATE "{make_url(template).database}"' if template else ""
    admin_url = server.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise refused(server, exc) from None
    with admin:
        try:
            admin.execute(f'CREATE DATABASE "{database}"{copy}')
        except psycopg.Error as exc:
            raise refused(server, exc) from None
        try:
            yield server.set(database=database).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def refused(server: Any, exc: Exception) -> Exception:
    """The error that says the server at `server` would not make the benchmark's database:
    its first line, the URL's password hidden."""
    from drumbeat.errors import InvalidInput

    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    shown = server.render_as_string(hide_password=True)
    return InvalidInput(f"cannot create a database on {shown}: {reason}", what="--postgres")
