"""The in-app channel: messages land in the `inbox` table for the user's client to fetch.

A batch is one bulk insert in one write transaction. `message_id` is unique in the inbox,
so sending a message again (after a crash between send and record) changes nothing.
`inbox_messages` and `mark_read` are what the API serves to clients; like every query of
the store they filter on the workspace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from drumbeat.channels.base import Message, Result
from drumbeat.errors import DrumbeatError
from drumbeat.pipeline.clock import store_now
from drumbeat.store.schema import inbox

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store.base import Store

SUBJECT_MAX = 500  # inbox.subject is String(500)


class InAppChannel:
    name: ClassVar[str] = "in_app"

    def __init__(
        self, settings: Settings, store: Store, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.store = store
        # a message's time is on the campaign's timeline: the store's clock, virtual or real,
        # read at each batch (one query), so `drumbeat advance` moves it
        self.clock = clock or partial(store_now, store)
        self._workspaces: dict[str, int] = {}
        self._lock = threading.Lock()

    def _workspace_id(self, name: str) -> int:
        """The id of an existing workspace, cached: a message never creates a workspace."""
        with self._lock:
            found = self._workspaces.get(name)
        if found is None:
            found = self.store.workspace_id(name, create=False)
            with self._lock:
                self._workspaces[name] = found
        return found

    def send_batch(self, messages: Sequence[Message]) -> list[Result]:
        results: list[Result] = []
        rows: list[dict[str, Any]] = []
        now = self.clock()
        for message in messages:
            try:
                ws = self._workspace_id(message.workspace)
            except DrumbeatError as exc:
                results.append(Result.failed(str(exc).strip()))
                continue
            rows.append(
                {
                    "workspace_id": ws,
                    "user_id": message.user_id,
                    "message_id": message.message_id,
                    "campaign_key": message.campaign,
                    "subject": message.subject[:SUBJECT_MAX],
                    "body": message.body,
                    "created_at": now,
                }
            )
            results.append(Result.sent(message.message_id))
        if rows:
            dialect = postgresql if self.store.engine.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(inbox).on_conflict_do_nothing(index_elements=["message_id"])
            with self.store.writing() as conn:
                conn.execute(statement, rows)
        return results

    def close(self) -> None:
        """Nothing to release: the store belongs to the caller."""


def inbox_messages(
    store: Store,
    workspace_id: int,
    user_id: str,
    *,
    unread_only: bool = False,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """A user's inbox, newest first; `before_id` pages on (pass the last id of a page)."""
    query = select(
        inbox.c.id,
        inbox.c.message_id,
        inbox.c.campaign_key,
        inbox.c.subject,
        inbox.c.body,
        inbox.c.created_at,
        inbox.c.read_at,
    ).where(inbox.c.workspace_id == workspace_id, inbox.c.user_id == user_id)
    if unread_only:
        query = query.where(inbox.c.read_at.is_(None))
    if before_id is not None:
        query = query.where(inbox.c.id < before_id)
    query = query.order_by(inbox.c.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def unread_count(store: Store, workspace_id: int, user_id: str) -> int:
    query = select(func.count()).where(
        inbox.c.workspace_id == workspace_id,
        inbox.c.user_id == user_id,
        inbox.c.read_at.is_(None),
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def mark_read(store: Store, workspace_id: int, user_id: str, ids: Sequence[int], now: float) -> int:
    """Mark a user's messages read (the first read time is kept); returns how many changed."""
    if not ids:
        return 0
    statement = (
        update(inbox)
        .where(
            inbox.c.workspace_id == workspace_id,
            inbox.c.user_id == user_id,
            inbox.c.id.in_(list(ids)),
            inbox.c.read_at.is_(None),
        )
        .values(read_at=now)
    )
    with store.writing() as conn:
        return int(conn.execute(statement).rowcount)
