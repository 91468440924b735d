"""The store of record: schema as data, bulk methods, SQLite and PostgreSQL, migrations."""

from __future__ import annotations

from drumbeat.store.base import Store
from drumbeat.store.connect import create
from drumbeat.store.migrate import upgrade


def open_store(url: str, *, batch_size: int = 1000, migrate: bool = True) -> Store:
    """Connect to the store at `url`, bringing its schema up to date first."""
    engine = create(url)
    if migrate:
        upgrade(engine)
    if engine.dialect.name == "postgresql":
        from drumbeat.store.postgres import PostgresStore

        return PostgresStore(engine, batch_size=batch_size)
    from drumbeat.store.sqlite import SQLiteStore

    return SQLiteStore(engine, batch_size=batch_size)


__all__ = ["Store", "open_store"]
