"""The store's side of a users import: it writes each staged batch as it comes in a
transaction that commits only once the whole file is known good."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING, Protocol, cast

from sqlalchemy import Connection, Engine, RootTransaction

from drumbeat import metrics
from drumbeat.ingest.staging import Staged
from drumbeat.model.attributes import AttrType
from drumbeat.store import Store

if TYPE_CHECKING:
    from drumbeat.cache import UserCache


class ImportingStore(Protocol):
    """What a backend offers a users import (`sqlite.py`, `postgres.py`): how many lanes
    (connections) to write in, and the upsert of a staged batch on one of them, which
    empties its values once the database holds them (memory stays low while it works)."""

    engine: Engine
    import_lanes: int
    user_cache: UserCache | None

    def _writers_turn(self) -> AbstractContextManager[None]: ...

    def _import_staged(
        self, conn: Connection, ws: int, staged: Staged, now: float, *, new: bool
    ) -> tuple[int, bool]: ...

    def _register_types(
        self, conn: Connection, ws: int, new: Mapping[str, AttrType], *, declared: bool = False
    ) -> None: ...


class UserImport:
    """The store's side of a users import: one connection a lane, each in a transaction of
    its own from its first batch on. `write` upserts a batch (on the lane's thread) as
    `write_users` would; `commit` registers the attribute types first seen in the file and
    commits lane after lane, lane 0 (which holds the types) first; `close` rolls back what
    was not committed. Nothing is visible to others before `commit`.

    On SQLite the import holds the write lock from its first batch to its end, so it takes
    the writers' turn (`StoreCore._writers_turn`) for its whole life: other writers queue
    behind it instead of giving up after SQLite's busy timeout (a minute; a big import takes
    longer)."""

    def __init__(self, store: Store, ws: int, now: float) -> None:
        self.store = cast(ImportingStore, store)
        self.ws, self.now = ws, now
        self.lanes = self.store.import_lanes
        self._conns: list[Connection] = []
        self._transactions: list[RootTransaction | None] = [None] * self.lanes
        self._turn = ExitStack()
        # Into a workspace with no users yet, a lane's batches are likely all new users: it
        # inserts them as such until one meets a user there already (`_import_staged`).
        self._new = [not store.holds_users(ws)] * self.lanes
        try:
            self._turn.enter_context(self.store._writers_turn())
            for _ in range(self.lanes):  # BEGIN IMMEDIATE on SQLite: the writer's lock
                self._conns.append(
                    self.store.engine.connect().execution_options(sqlite_immediate=True)
                )
        except BaseException:
            self.close()
            raise

    def write(self, lane: int, staged: Staged) -> int:
        """Upsert a batch in the lane's transaction (emptying its values); returns the users
        written."""
        conn = self._conns[lane]
        if self._transactions[lane] is None:
            self._transactions[lane] = conn.begin()
        with metrics.timed("store.write_users", len(staged)):
            written, self._new[lane] = self.store._import_staged(
                conn, self.ws, staged, self.now, new=self._new[lane]
            )
            return written

    def commit(self, new_types: Mapping[str, AttrType]) -> None:
        if self._transactions[0] is None:
            self._transactions[0] = self._conns[0].begin()
        self.store._register_types(self._conns[0], self.ws, new_types)
        for transaction in self._transactions:
            if transaction is not None:
                transaction.commit()
        if self.store.user_cache is not None:  # all of the workspace's users, at once
            self.store.user_cache.invalidate_workspace(self.ws)

    def close(self) -> None:
        for conn in self._conns:
            conn.close()  # rolls back a transaction still open
        self._turn.close()
