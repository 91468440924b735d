"""What every part of the Store shares: the engine, transactions, dialect-specific inserts,
and the compiled audience filter. The parts (users and events, campaigns, outbox, batches)
are mixins over this core, put together in `base.Store`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from drumbeat import metrics
from drumbeat.errors import DrumbeatError, InvalidInput
from drumbeat.model.attributes import AttrType
from drumbeat.model.user import User
from drumbeat.store.schema import ATTRIBUTE_INDEX_PREFIX, attribute_types, users, workspaces
from drumbeat.store.unflushed import UnflushedWrites
from drumbeat.store.writers_turn import WritersTurn

if TYPE_CHECKING:
    from drumbeat.model.rules import Rule


log = logging.getLogger(__name__)
T = TypeVar("T")
DB_RETRY_SECONDS = 60.0  # DRUMBEAT_DB_RETRY_SECONDS: how long a lost database is waited for
# SQLSTATEs of a lost or refused connection: class 08, and the server shutting down or
# terminating the backend (pg_terminate_backend), crashing, or starting.
_LOST_STATES = ("57P01", "57P02", "57P03")


USER_COLUMNS = (
    "user_id",
    "email",
    "timezone",
    "unsubscribed",
    "created_at",
    "last_seen_at",
    "attributes",
    "updated_at",
    "version",
)


_LOAD_USERS = f"""
SELECT {", ".join(USER_COLUMNS)} FROM users WHERE workspace_id = ? AND user_id IN_IDS
"""


def user_of(values: Sequence[Any], loads: Callable[[Any], Any] | None = None) -> User:
    """A user from the values of USER_COLUMNS, in that order (`loads`: the attributes are
    JSON text, as SQLite gives them)."""
    attributes = values[6] if loads is None else loads(values[6])
    v = values
    return User(v[0], v[1], v[2], bool(v[3]), v[4], v[5], attributes, v[7], v[8])


class StoreUnavailable(DrumbeatError):
    """The database stayed out of reach for longer than the retry time."""


class JsonRows:
    """A PostgreSQL write of rows sent as one parameter, a JSON array of arrays: `sql` reads
    them from ROWS, which stands for the table `r` of `columns` (name, type) the server makes
    of it (`jsonb_array_elements`, each field cast from its text). orjson writes a batch of
    1,000 memberships in 0.5 ms of CPU, where psycopg built one binary array a column element
    by element in Python (3.2 ms); the server's insert takes as long as from those arrays
    (~10 ms, indexes and foreign key included). In `jsonb`, parsed once: from `json` each
    field reparses its row's text, and the insert took 18 ms. JSON has no infinity or NaN
    (orjson writes null): the times written are finite."""

    def __init__(self, sql: str, columns: Sequence[tuple[str, str]]) -> None:
        fields = ", ".join(f"(e->>{i})::{kind} AS {name}" for i, (name, kind) in enumerate(columns))
        rows = f"(SELECT {fields} FROM jsonb_array_elements(%s::jsonb) AS e) AS r"
        self.sql = sql.replace("ROWS", rows)

    @staticmethod
    def params(rows: Sequence[Sequence[Any]]) -> tuple[str]:
        return (orjson.dumps(rows).decode(),)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_ATTRIBUTE_INDEXES = (
    "SELECT name FROM sqlite_master WHERE type = 'index' AND substr(name, 1, ?) = ?"
)
# The planner's tables that PostgreSQL's counters say changed by over a fraction of their
# rows (and 50) since their last ANALYZE: autovacuum's own rule with a tenth, for a server
# that runs none (or not yet).
_STALE_TABLES = """SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema() AND s.relname = ANY(%s)
  AND s.n_mod_since_analyze > 50 + %s * greatest(c.reltuples, 0) ORDER BY s.relname"""
AUTOVACUUM_SHARE = 0.1
# During a tick's probes, only tables never analyzed or that about doubled since: the plans
# need statistics taken once the table held rows, not fresh ones (the planner scales the
# row count it read to the table's pages now). With a tenth, `advance` entering 200,000
# users ran 12-15 ANALYZEs (1.0 s, at load 3); about doubling, 5-6 (0.35 s).
GROWTH_SHARE = 1.0
_PLANNED_TABLES = ("batches", "events", "memberships", "users")


class StoreCore:
    dialect: str = ""

    def __init__(
        self, engine: Engine, *, batch_size: int = 1000, retry_seconds: float = DB_RETRY_SECONDS
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.retry_seconds = retry_seconds
        # Leases count real time, whatever the store's clock (tests move this one by hand).
        self.real_clock: Callable[[], float] = time.time
        # A slow lane's worker gives way to other writers on a SQLite file (`_writers_turn`).
        self.writes_give_way = False
        database = self._sqlite_file()
        self._turn = None if database is None else WritersTurn(database)
        self._statistics_kept_at = -math.inf
        postgres = self.dialect == "postgresql"
        self._unflushed = UnflushedWrites(engine) if postgres else None  # connects when used

    def retrying(self, work: Callable[[], T], what: str) -> T:
        """`work()`, done again after a lost connection (PostgreSQL restarted, the backend
        terminated) with backoff, until it succeeds or `retry_seconds` have passed without
        success: then StoreUnavailable. `work` must be safe to do again: it may have
        committed before the connection was lost. The pool's pre-ping replaces a connection
        that died idle; this covers one that dies in use."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        while True:
            try:
                return work()
            except DBAPIError as exc:
                if not self._lost_connection(exc):
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreUnavailable(
                        f"{what}: the database stayed unreachable for "
                        f"{self.retry_seconds:g} s (DRUMBEAT_DB_RETRY_SECONDS): {exc.orig}"
                    ) from exc
                log.warning("%s: connection lost (%s); trying again", what, exc.orig)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)

    def _lost_connection(self, exc: DBAPIError) -> bool:
        """Whether `exc` means the connection was lost or refused (SQLite has none to lose:
        its errors are never retried)."""
        if self.dialect != "postgresql":
            return False
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None)
        if state is None:  # psycopg could not connect at all
            return isinstance(exc, OperationalError)
        return str(state).startswith("08") or state in _LOST_STATES

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A connection in a write transaction (BEGIN IMMEDIATE on SQLite): commits on success."""
        with (
            self._writers_turn(),
            self.engine.connect().execution_options(sqlite_immediate=True) as conn,
            conn.begin(),
        ):
            yield conn

    def write_one(self, statement: Any, values: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row (RETURNING) of one write statement, built once, run with `values`
        and committing on its own, for a write the store may lose in a crash: a claim,
        whose holder its finish checks again (`_finish_statement`). On PostgreSQL its commit
        does not wait for the WAL flush (a flush took 2-3 ms of a 3 ms claim), on
        connections kept for it (`store/unflushed.py`); whatever commits after it, durably,
        makes it durable too. SQLite's is `SQLiteStore.write_one`, whose commits never wait
        for the disk (`synchronous=NORMAL`)."""
        assert self._unflushed is not None  # SQLite's store has a write_one of its own
        return self._unflushed.first(statement, values)

    def _writers_turn(self) -> AbstractContextManager[None]:
        """On a SQLite file, the writers' turn (`store/writers_turn.py`), taken before BEGIN
        IMMEDIATE; giving way to other writers if `writes_give_way` (a slow lane's worker)."""
        if self._turn is None:
            return nullcontext()
        return self._turn.taken(give_way=self.writes_give_way)

    def keep_statistics(self) -> None:
        """On PostgreSQL, at most once a second: ANALYZE the planner's tables never analyzed
        or about doubled since they were (`GROWTH_SHARE`; `refresh_statistics` takes a tenth,
        now and then). Called by the planner's probes by key, a batch of ids at a
        time: the members a big entry writes arrive while a tick probes thousands of ids,
        and a probe planned without column statistics reads the campaign's whole
        membership per id. On SQLite nothing (`refresh_statistics` reads whole indexes)."""
        if self.dialect == "postgresql" and time.monotonic() - self._statistics_kept_at > 1.0:
            self._analyze_stale(GROWTH_SHARE)
            self._statistics_kept_at = time.monotonic()

    def refresh_statistics(self) -> None:
        """Let the query planner know the tables' shapes (SQLite keeps none by itself and
        then prefers any range index a rule names over the batch's ids).

        PostgreSQL: ANALYZE the planner's tables changed by over a tenth since their last
        (autovacuum's rule, `_STALE_TABLES`), as autovacuum would, for a server that runs
        none or has not come round yet. Without column statistics every equality is taken
        to keep 0.5% of a table, so after a big entry a membership probe by key read the
        (workspace, state, due) index through the campaign's whole membership, once per
        user: 10-30 s a tick at 20,000 members. Bounded: ANALYZE samples at most 300 x
        `default_statistics_target` rows of a table (30,000), and takes no lock that
        writers wait on; a table being analyzed or indexed (`CREATE INDEX CONCURRENTLY`)
        elsewhere is skipped, not waited for.

        Bounded: SQLite reads at most `analysis_limit` entries of each index, from its start.
        That misleads on an attribute index (store/indexes.py): its first 2,000 entries share
        one workspace and mostly one value, so all such indexes look alike (2,000 users a
        value) and the planner picks among them blindly (at 1M users, a range on a number
        over an equality twice as fast). Those are read whole (~0.15 s per million users).
        Statistics are loaded with the schema and ANALYZE does not reload them in other
        connections, so a file's pool is replaced; an in-memory database keeps its own."""
        if self.dialect != "sqlite":
            self._analyze_stale(AUTOVACUUM_SHARE)
            return
        quote = self.engine.dialect.identifier_preparer.quote
        with self.writing() as conn:
            conn.exec_driver_sql("PRAGMA analysis_limit=2000")
            conn.exec_driver_sql("ANALYZE")
            prefix = (len(ATTRIBUTE_INDEX_PREFIX), ATTRIBUTE_INDEX_PREFIX)
            attribute_indexes = conn.exec_driver_sql(_ATTRIBUTE_INDEXES, prefix).scalars().all()
            conn.exec_driver_sql("PRAGMA analysis_limit=0")
            for name in attribute_indexes:
                conn.exec_driver_sql(f"ANALYZE {quote(name)}")
        if self._sqlite_file() is not None:
            self.engine.dispose()

    def _analyze_stale(self, share: float) -> None:
        """ANALYZE the planner's tables changed by over `share` of their rows (and 50)."""
        with self.engine.begin() as conn:
            tables = (list(_PLANNED_TABLES), share)
            stale = conn.exec_driver_sql(_STALE_TABLES, tables).scalars().all()
            if stale:
                with metrics.timed("store.analyze", len(stale)):
                    conn.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {', '.join(stale)}")

    def _sqlite_file(self) -> str | None:
        """The SQLite database's file, or None (PostgreSQL, or SQLite in memory)."""
        url = self.engine.url
        if self.dialect != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return None if "mode=memory" in str(url) else url.database

    def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file now and empty it (writes
        otherwise pay for this at the next commit past `wal_autocheckpoint`). A benchmark
        calls it at the end of what it times, so each measure pays for its own writes."""
        if self.dialect == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        if self._unflushed is not None:
            self._unflushed.close()
        self.engine.dispose()

    def _dialect_insert(self, table: Table) -> Any:
        """INSERT with this database's ON CONFLICT support."""
        return (postgresql if self.dialect == "postgresql" else sqlite).insert(table)

    def _write_rows(
        self, conn: Connection, sql: str, rows: Sequence[Sequence[Any]], postgres: JsonRows
    ) -> int:
        """Write rows with one hand-written INSERT (hot paths: no per-row work in SQLAlchemy);
        returns the rows affected.

        SQLite: `sql`, one `VALUES (…)` row with `?` placeholders, run per row by one
        executemany of its prepared statement, in-process. PostgreSQL: `postgres`, the same
        write reading the rows from one JSON parameter (`JsonRows`): one statement and one
        round trip for the batch. (A pipelined executemany sent one INSERT a row, and most of
        a batch's commit went to psycopg's per-row Python and the server's per-statement
        work: 53 ms a kind of row a batch of 1,000, against ~8 ms; multi-row VALUES of 500
        rows, before that, were slower still.)"""
        if not rows:
            return 0
        if self.dialect == "postgresql":
            return max(0, int(conn.exec_driver_sql(postgres.sql, postgres.params(rows)).rowcount))
        return max(0, int(conn.exec_driver_sql(sql, list(rows)).rowcount))

    def _fetch_by_ids(
        self, conn: Connection, sql: str, params: Sequence[Any], ids: Sequence[str]
    ) -> list[Any]:
        """Rows of hand-written SQL whose last condition is `column IN_IDS` (user ids, address
        hashes: strings): the ids go as one parameter (a JSON array on SQLite, an array on
        PostgreSQL), not one bind per id."""
        if self.dialect == "postgresql":
            # the array in binary: in text, psycopg escapes each id in Python
            sql = sql.replace("?", "%s").replace("IN_IDS", "= ANY(%b::text[])")
            ids_param: Any = list(ids)
        else:
            sql = sql.replace("IN_IDS", "IN (SELECT value FROM json_each(?))")
            ids_param = orjson.dumps(list(ids)).decode()
        return list(conn.exec_driver_sql(sql, (*params, ids_param)).fetchall())

    def read_users(self, conn: Connection, ws: int, user_ids: Sequence[str]) -> dict[str, User]:
        """The users among `user_ids` (unknown ids left out), in `conn`'s transaction."""
        found: dict[str, User] = {}
        loads = orjson.loads if self.dialect == "sqlite" else None
        for part in chunks(user_ids, self.batch_size):
            for row in self._fetch_by_ids(conn, _LOAD_USERS, (ws,), part):
                found[row[0]] = user_of(row, loads)
        return found

    def _insert_ignore(self, table: Table) -> Any:
        return self._dialect_insert(table).on_conflict_do_nothing()

    def _require_workspace(self, conn: Connection, ws: int) -> None:
        """Users carry no foreign key to workspaces (its check fired for every user written):
        each write of users checks its workspace once, in its transaction, instead."""
        if conn.execute(select(workspaces.c.id).where(workspaces.c.id == ws)).first() is None:
            raise InvalidInput(f"no workspace with id {ws}", what="workspace")

    def attribute_types(self, ws: int) -> dict[str, AttrType]:
        query = select(attribute_types.c.name, attribute_types.c.type).where(
            attribute_types.c.workspace_id == ws
        )
        with self.engine.connect() as conn:
            return {name: AttrType(kind) for name, kind in conn.execute(query)}

    def _audience_filter(self, ws: int, rule: Rule, now: float) -> list[Any]:
        from drumbeat.rules.sql import compile_sql

        types = self.attribute_types(ws)
        return [
            users.c.workspace_id == ws,
            compile_sql(rule, types=types, now=now, dialect=self.dialect),
        ]
