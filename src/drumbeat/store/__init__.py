"""The store of record: schema as data, bulk methods, SQLite and PostgreSQL, migrations.

Nothing is imported here up front: `drumbeat.store.readonly` (the quick read of `clock` and
`stats`) must not pay for SQLAlchemy. `from drumbeat.store import Store` loads it then."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drumbeat.cache import UserCache
    from drumbeat.config import Settings
    from drumbeat.store.base import Store


def open_store(
    url: str,
    *,
    batch_size: int = 1000,
    migrate: bool = True,
    retry_seconds: float | None = None,
    cache: UserCache | None = None,
) -> Store:
    """Connect to the store at `url`, bringing its schema up to date first. Work that
    loses its connection is tried again for `retry_seconds` (`StoreCore.retrying`; default
    DB_RETRY_SECONDS). With `cache`, users are read through it and writes of users
    invalidate it."""
    from drumbeat.store.connect import create
    from drumbeat.store.core import DB_RETRY_SECONDS
    from drumbeat.store.migrate import upgrade

    engine = create(url)
    migrated = migrate and upgrade(engine)
    retry = DB_RETRY_SECONDS if retry_seconds is None else retry_seconds
    store: Store
    if engine.dialect.name == "postgresql":
        from drumbeat.store.postgres import PostgresStore

        store = PostgresStore(engine, batch_size=batch_size, retry_seconds=retry)
    else:
        from drumbeat.store.sqlite import SQLiteStore

        store = SQLiteStore(engine, batch_size=batch_size, retry_seconds=retry)
    store.user_cache = cache
    if migrated:  # a revision may have dropped an index a live rule wants (0007, 0011)
        store.sync_attribute_indexes()
    return store


def open_configured(settings: Settings, *, migrate: bool = True) -> Store:
    """`open_store` as the settings say (URL, batch size, retries, user cache): what every
    process that works batches opens."""
    from drumbeat.cache import user_cache

    return open_store(
        settings.database_url,
        batch_size=settings.batch_size,
        migrate=migrate,
        retry_seconds=settings.db_retry_seconds,
        cache=user_cache(settings),
    )


def __getattr__(name: str) -> Any:
    if name == "Store":
        from drumbeat.store.base import Store

        return Store
    raise AttributeError(name)


__all__ = ["Store", "open_configured", "open_store"]
