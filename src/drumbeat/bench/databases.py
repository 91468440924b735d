"""Fresh PostgreSQL databases for a benchmark, on the server of a URL it was given."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fresh_database(url: str, label: str, *, template: str | None = None) -> Iterator[str]:
    """A new database on `url`'s server, called after `url`'s (`NAME_LABEL_…`; the URL's
    user needs CREATEDB), empty or a copy of `template` (a URL of a database on the same
    server that no one is connected to); its URL. Dropped at the end."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(url)
    database = f"{(server.database or 'drumbeat')[:30]}_{label}_{uuid.uuid4().hex[:8]}"
    copy = f' TEMPLATE "{make_url(template).database}"' if template else ""
    admin_url = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"{copy}')
        try:
            yield server.set(database=database).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
