"""Dead rows back to pending, for an operator who fixed what killed them: dead batches
(store/batches.py) and dead outbox messages (store/outbox.py) alike. One transaction reads
the rows chosen, refuses the lot if an id named is not a dead row of the workspace, and puts
them back in one statement."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Table,
    any_,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from drumbeat.errors import InvalidInput
from drumbeat.store.core import StoreCore
from drumbeat.store.schema import workspaces


@dataclass(frozen=True)
class DeadRows:
    """A table whose rows end `dead`: its columns listed back, and how a refusal names a row."""

    table: Table
    listed: Sequence[Column[Any]]
    noun: str  # "batch"
    nouns: str  # "batches"


class NotDead(InvalidInput):
    """Ids named that are not dead rows of the workspace: `unknown` (none there, or another
    workspace's) and `live` (id → its status). Nothing was retried."""

    def __init__(self, kind: DeadRows, workspace: str, unknown: list[int], live: dict[int, str]):
        problems = [
            f"{kind.noun} {i}: not in workspace {workspace!r}"
            if i in unknown
            else f"{kind.noun} {i} is {live[i]}, not dead"
            for i in sorted([*unknown, *live])
        ]
        what = f"{kind.nouns} to retry"
        super().__init__("; ".join([*problems, "nothing was retried"]), what=what)
        self.unknown, self.live = unknown, live


def retry_dead(
    store: StoreCore,
    kind: DeadRows,
    ws: int,
    ids: Collection[int] | None,
    values: Mapping[str, Any],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Set `values` on the workspace's dead rows `ids` (None: every dead one), those of them
    matching `where` too, in one transaction: NotDead if an id named is not a dead row of
    the workspace, and nothing changes. Returns the rows (their `listed` columns) as they
    were; `dry_run` only reads them."""
    c = kind.table.c
    named = c.status == "dead" if ids is None else c.id.in_(sorted(set(ids)))
    chosen = [c.workspace_id == ws, named]
    query = select(*kind.listed).where(*chosen, *where).order_by(c.id)
    if store.dialect == "postgresql":  # held until the update: a second retry waits, then sees
        query = query.with_for_update()
    with store.writing() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        if ids is not None:
            _refuse_not_dead(conn, kind, ws, ids, rows)
        if rows and not dry_run:
            same = _same_rows(store, c.id, [r["id"] for r in rows])
            back = update(kind.table).where(*chosen, *where, c.status == "dead", same)
            conn.execute(back.values(**values))
    return rows


def _same_rows(store: StoreCore, id_column: Column[Any], ids: list[int]) -> ColumnElement[bool]:
    """The rows read, again. PostgreSQL: by id, one array parameter (a row made dead since,
    by a dispatcher's commit, is not among them). SQLite: the write transaction has held the
    database since the read, so the same conditions find the same rows."""
    if store.dialect == "postgresql":
        return id_column == any_(literal(ids, ARRAY(BigInteger)))
    return true()


def _refuse_not_dead(
    conn: Connection,
    kind: DeadRows,
    ws: int,
    ids: Collection[int],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """NotDead naming each of `ids` that is not a dead row among `rows` (those of them
    found in workspace `ws`)."""
    found = {int(r["id"]): str(r["status"]) for r in rows}
    unknown = sorted({i for i in ids if i not in found})
    live = {i: status for i, status in found.items() if status != "dead"}
    if unknown or live:
        name = conn.execute(select(workspaces.c.name).where(workspaces.c.id == ws)).scalar_one()
        raise NotDead(kind, name, unknown, live)
