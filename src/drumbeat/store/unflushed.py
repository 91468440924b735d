"""PostgreSQL's writes of one statement that commit on their own without waiting for the
WAL flush (`StoreCore.write_one`: a batch's claim by id), on connections kept for them: in
autocommit, with `synchronous_commit` off for the whole session, run on the driver's
connection (`DriverStatement`), so that a write is one statement and one round trip.
Through the store's pool it took five (the pool's pre-ping, BEGIN, SET LOCAL, the
statement, COMMIT), and SQLAlchemy's execution: `drumbeat bench pipeline`, a claim
1.3-1.8 ms, now 0.8-1.1 ms.

These connections are not pinged when taken from their pool. A write on one found dead
(the server restarted, the backend terminated while it sat idle) is done once more at once
on a new connection, as the pre-ping would have; a failure then goes to `StoreCore.retrying`
as a lost connection. A write done again may have committed the first time: a claim under
the same owner takes its own batch again (`claimable`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from drumbeat.store.connect import postgres_options
from drumbeat.store.driver_statement import DriverStatement, driver_connection, driver_statement


class UnflushedWrites:
    def __init__(self, engine: Engine) -> None:
        """Connections of their own to `engine`'s database (made as they are needed)."""
        self.engine = create_engine(
            engine.url,
            pool_size=1,  # a worker process claims one batch at a time
            max_overflow=7,
            isolation_level="AUTOCOMMIT",
            **postgres_options(engine.url),
        )
        event.listen(self.engine, "connect", _without_flush_wait)

    def first(self, statement: Any, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of `statement` run with `values` (None: no row), committed."""
        run = driver_statement(statement, self.engine.dialect)
        try:
            return self._first(run, values)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return self._first(run, values)  # the connection had died idle: a new one

    def _first(self, run: DriverStatement, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        with driver_connection(self.engine, run.sql) as raw:
            return run.first(raw, values)

    def close(self) -> None:
        self.engine.dispose()


def _without_flush_wait(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("SET synchronous_commit TO OFF")
    dbapi_connection.commit()  # whether or not the connection is in autocommit yet
