"""Staged user imports: checked users are cut into batches and staged in the database while
the rest of the file is checked; once the whole file is known good, each batch is upserted
from the stage in a transaction of its own.

The stage is per backend (`SQLiteUserImport`, `PostgresUserImport`); this module cuts the
batches: one row per user (later calls for the same user merged in, as `write_users` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from drumbeat.ingest.rows import ATTRIBUTES, FIELD_SLOTS, NULLS
from drumbeat.model.attributes import AttrType
from drumbeat.store import Store


class UserImport(Protocol):
    """What a backend offers for a staged users import: `lanes` connections, each user always
    in the same one; the batches of a lane are written in order, the lanes side by side."""

    lanes: int

    def stage(self, lane: int, rows: Sequence[Sequence[Any]], again: bool = False) -> None:
        """Stage rows (`again`: rows staged before, changed since)."""

    def write(
        self,
        lane: int,
        batch: int,
        size: int,
        shapes: Iterable[tuple[bool, bool]],
        new_types: Mapping[str, AttrType],
    ) -> int: ...

    def close(self) -> None: ...


def open_user_import(store: Store, ws: int, now: float) -> UserImport:
    """A stage for importing users of workspace `ws` into `store`, written at `now`."""
    if store.dialect == "postgresql":
        from drumbeat.store.postgres import PostgresStore, PostgresUserImport

        assert isinstance(store, PostgresStore)
        return PostgresUserImport(store, ws, now)
    from drumbeat.store.sqlite import SQLiteStore, SQLiteUserImport

    assert isinstance(store, SQLiteStore)
    return SQLiteUserImport(store, ws, now)


@dataclass(frozen=True, slots=True)
class StagedBatch:
    """A batch as staged: its lane and number, how many calls it holds (before merging),
    which (gives unsubscribed, removes attributes) shapes its rows have, the attribute types
    to register with it, and how many bytes of the file its lines took."""

    lane: int
    number: int
    size: int
    shapes: frozenset[tuple[bool, bool]]
    new_types: Mapping[str, AttrType]
    read: int


def staged(row: list[Any], batch: int) -> tuple[Any, ...]:
    """A checked row as staged: the batch first, attributes without nulls, then the whole
    attribute patch when it removes some (else None)."""
    _, user_id, email, zone, unsubscribed, created_at, last_seen_at, attributes, nulls = row
    patch = None
    if nulls:
        patch, attributes = attributes, {k: v for k, v in attributes.items() if v is not None}
    return (batch, user_id, email, zone, unsubscribed, created_at, last_seen_at, attributes, patch)


class BatchCutter:
    """Collects one lane's checked users (`rows`) into batches, one row per user (later
    calls merged in); `take` hands over the rows to stage as they come, `cut` ends a batch.

    A row staged before its batch ends may change (the same user again): `cut` gives it back
    to be staged again. Attribute types are registered with the first batch of the lane that
    follows their first sighting in the file (with one lane: the batch they were first seen
    in), so that no user is written with an attribute whose type is not."""

    def __init__(self, lane: int = 0) -> None:
        self.lane = lane
        self.size = 0  # calls in the batch
        self._read = 0
        self._number = 0
        self._rows: list[list[Any]] = []
        self._where: dict[str, int] = {}
        self._taken = 0  # rows[:taken] were handed over
        self._changed: set[int] = set()  # of those, the ones changed since
        self._registered: set[str] = set()

    @property
    def waiting(self) -> int:
        """Rows not yet handed over."""
        return len(self._rows) - self._taken

    def add(self, row: list[Any], read: int = 0) -> None:
        """Add a checked user, whose line took `read` bytes of the file."""
        self.size += 1
        self._read += read
        user_id = row[1]
        where = self._where.get(user_id)
        if where is None:
            self._where[user_id] = len(self._rows)
            self._rows.append(row)
            return
        earlier = self._rows[where]  # the same user again: fields given later win
        for slot in FIELD_SLOTS.values():
            if row[slot] is None:
                row[slot] = earlier[slot]
        attributes = row[ATTRIBUTES] = {**earlier[ATTRIBUTES], **row[ATTRIBUTES]}
        row[NULLS] = None in attributes.values()
        self._rows[where] = row
        if where < self._taken:
            self._changed.add(where)

    def take(self) -> list[tuple[Any, ...]]:
        """The rows not handed over yet, as staged."""
        number, rows = self._number, self._rows
        taken = [staged(rows[i], number) for i in range(self._taken, len(rows))]
        self._taken = len(rows)
        return taken

    def cut(
        self, types_seen: Mapping[str, AttrType]
    ) -> tuple[StagedBatch, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """End the batch: the batch, its rows not handed over yet, and those to stage again.
        `types_seen`: every attribute type first seen in the file so far."""
        rows, number = self._rows, self._number
        fresh = self.take()
        again = [staged(rows[i], number) for i in sorted(self._changed)]
        shapes = frozenset({(row[4] is not None, row[NULLS]) for row in rows})
        new_types = {k: v for k, v in types_seen.items() if k not in self._registered}
        self._registered.update(new_types)
        batch = StagedBatch(self.lane, number, self.size, shapes, new_types, self._read)
        self._number += 1
        self.size = self._read = self._taken = 0
        self._rows, self._where, self._changed = [], {}, set()
        return batch, fresh, again
