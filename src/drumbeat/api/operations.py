"""`/v1/outbox` and `/v1/batches`: messages and batches with filters, a page at a time
(keyset on id, with an opaque cursor), and a dead batch or message put back to work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Path, Query

from drumbeat.api.admin import (
    ERRORS,
    MAX_ID,
    AdminRoute,
    conflict,
    decode_cursor,
    next_cursor,
    not_found,
    workspace,
)
from drumbeat.choices import BatchStatus, MessageStatus
from drumbeat.client import Drumbeat
from drumbeat.store.dead import NotDead
from drumbeat.views import Batch, Message

router = APIRouter(prefix="/v1", tags=["operations"], route_class=AdminRoute, responses=ERRORS)

LimitOpt = Query(100, ge=1, le=1000, description="Items a page")
CursorOpt = Query(None, description="The `next_cursor` of the previous page")
CampaignOpt = Query(None, description="Only this campaign's")


@dataclass(frozen=True)
class MessagePage:
    items: list[Message]
    next_cursor: str | None  # null on the last page


@dataclass(frozen=True)
class BatchPage:
    items: list[Batch]
    next_cursor: str | None


def _known_campaign(client: Drumbeat, campaign: str | None) -> None:
    if campaign is not None and client.store.campaign(client.ws, campaign) is None:
        raise not_found("campaign", f"no campaign {campaign!r} in this workspace")


@router.get("/outbox", response_model=MessagePage)
def outbox(
    campaign: str | None = CampaignOpt,
    status: MessageStatus | None = Query(None, description="Only messages in this status"),
    user_id: str | None = Query(None, description="Only this user's"),
    limit: int = LimitOpt,
    cursor: str | None = CursorOpt,
    client: Drumbeat = Depends(workspace),
) -> MessagePage:
    """The workspace's messages, oldest first."""
    _known_campaign(client, campaign)
    found = client.outbox(
        campaign, status, user_id=user_id, after=decode_cursor(cursor), limit=limit + 1
    )
    return MessagePage(found[:limit], next_cursor([m.id for m in found], limit))


@router.get("/batches", response_model=BatchPage)
def batches(
    campaign: str | None = CampaignOpt,
    status: BatchStatus | None = Query(None, description="Only batches in this status"),
    limit: int = LimitOpt,
    cursor: str | None = CursorOpt,
    client: Drumbeat = Depends(workspace),
) -> BatchPage:
    """The workspace's batches (units of planned work), oldest first."""
    _known_campaign(client, campaign)
    found = client.batches(status, campaign, after=decode_cursor(cursor), limit=limit + 1)
    return BatchPage(found[:limit], next_cursor([b.id for b in found], limit))


@router.post("/batches/{batch_id}/retry", response_model=Batch)
def retry_batch(
    batch_id: int = Path(ge=1, le=MAX_ID), client: Drumbeat = Depends(workspace)
) -> Batch:
    """Put a dead batch back to pending, its attempts reset: the next tick runs it. A
    batch that is not dead: 409."""
    _retry_one("batch", batch_id, client.retry_batches)
    (retried,) = client.batches(ids=[batch_id])
    return retried


@router.post("/outbox/{message_id}/retry", response_model=Message)
def retry_message(
    message_id: int = Path(ge=1, le=MAX_ID), client: Drumbeat = Depends(workspace)
) -> Message:
    """Put a dead message back to pending, due now, its attempts and error cleared: the
    next dispatch sends it. A message that is not dead: 409."""
    _retry_one("message", message_id, client.retry_messages)
    (retried,) = client.outbox(ids=[message_id])
    return retried


def _retry_one(noun: str, row_id: int, retry: Callable[[list[int]], object]) -> None:
    """`retry([row_id])`, its refusal answered 404 (no such row in the key's workspace) or
    409 (not dead)."""
    try:
        retry([row_id])
    except NotDead as refused:
        if refused.unknown:
            raise not_found(f"{noun}_id", f"no {noun} {row_id} in this workspace") from None
        raise conflict("status", f"{noun} {row_id} is {refused.live[row_id]}, not dead") from None
