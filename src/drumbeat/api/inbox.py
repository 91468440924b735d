"""`/v1/inbox/{user_id}`: a user's in-app messages, for the user's own client (a web page or
an app) to fetch and mark read.

Either of two credentials: an inbox token of that user (`Authorization: Bearer …`, minted by
the product's backend with `Drumbeat.inbox_token` or `drumbeat inbox-token`, signed with the
workspace's key, expiring), which opens that one user's inbox and no other; or a write key
(basic auth, as the tracking calls), which opens any user's inbox of its workspace.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from drumbeat.api.auth import live_key
from drumbeat.api.signed import verified
from drumbeat.channels.in_app import inbox_messages, mark_read, unread_count
from drumbeat.channels.tokens import INBOX, InvalidToken, verify_inbox_token
from drumbeat.model.attributes import format_timestamp
from drumbeat.pipeline.clock import store_now

router = APIRouter(prefix="/v1/inbox", tags=["inbox"])

BIGINT = 2**63 - 1  # ids are 64-bit integers in the store
RowId = Annotated[int, Field(ge=1, le=BIGINT)]
UserId = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]
_BEARER = {"WWW-Authenticate": 'Bearer realm="drumbeat inbox"'}


class InboxMessage(BaseModel):
    id: int = Field(description="the inbox row: what `read` takes")
    message_id: str
    campaign: str
    subject: str
    body: str
    created_at: str
    read_at: str | None


class Inbox(BaseModel):
    user_id: str
    unread: int = Field(description="unread messages in all, not only on this page")
    messages: list[InboxMessage] = Field(description="newest first")


class ReadIds(BaseModel):
    ids: list[RowId] = Field(max_length=1000, description="the `id`s of messages to mark read")


class Marked(BaseModel):
    marked: int = Field(description="how many were unread until now")


def reader(request: Request, user_id: UserId) -> int:
    """The workspace id whose `user_id` inbox the request may open, or 401/403."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return live_key(request).workspace_id
    try:
        ws, named = verified(
            request.app, INBOX, token.strip(), lambda s, t: verify_inbox_token(s, t, time.time())
        )
    except InvalidToken as exc:
        raise HTTPException(401, str(exc), headers=_BEARER) from None
    if named != user_id:
        raise HTTPException(403, "this inbox token is for another user")
    return ws


@router.get("/{user_id}", response_model=Inbox)
def read_inbox(
    request: Request,
    user_id: UserId,
    ws: int = Depends(reader),
    unread_only: bool = Query(False, description="only the messages not read yet"),
    limit: int = Query(50, ge=1, le=200, description="at most this many messages"),
    before_id: int | None = Query(None, ge=1, le=BIGINT, description="page on: last `id` seen"),
) -> Any:
    """The user's in-app messages, newest first, and how many are unread."""
    store = request.app.state.store
    rows = inbox_messages(
        store, ws, user_id, unread_only=unread_only, limit=limit, before_id=before_id
    )
    return Inbox(
        user_id=user_id,
        unread=unread_count(store, ws, user_id),
        messages=[_message(row) for row in rows],
    )


@router.post("/{user_id}/read", response_model=Marked)
def read_messages(
    request: Request, user_id: UserId, body: ReadIds, ws: int = Depends(reader)
) -> Any:
    """Mark the user's messages read (ids of other users' messages change nothing)."""
    store = request.app.state.store
    return Marked(marked=mark_read(store, ws, user_id, body.ids, store_now(store)))


def _message(row: dict[str, Any]) -> InboxMessage:
    read_at = row["read_at"]
    return InboxMessage(
        id=row["id"],
        message_id=row["message_id"],
        campaign=row["campaign_key"],
        subject=row["subject"],
        body=row["body"],
        created_at=format_timestamp(row["created_at"]),
        read_at=None if read_at is None else format_timestamp(read_at),
    )
