"""`/v1/users/{user_id}`: a user's attributes, campaigns and latest messages; DELETE erases
them (events, attributes, memberships, messages, inbox), keeping only the sha256 of their
address so that it is never mailed again."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Query

from drumbeat.api.admin import ERRORS, AdminRoute, not_found, workspace
from drumbeat.client import Drumbeat
from drumbeat.views import UserDetail

router = APIRouter(prefix="/v1/users", tags=["users"], route_class=AdminRoute, responses=ERRORS)


@dataclass(frozen=True)
class Erased:
    user_id: str
    erased: bool


def _unknown(user_id: str) -> Exception:
    return not_found("user_id", f"no user {user_id!r} in this workspace")


@router.get("/{user_id:path}", response_model=UserDetail)
def get_user(
    user_id: str,
    messages: int = Query(20, ge=0, le=1000, description="How many latest messages"),
    client: Drumbeat = Depends(workspace),
) -> UserDetail:
    """The user's fields and attributes, their memberships (one a campaign they entered)
    and their latest messages, newest first."""
    found = client.user(user_id, messages=messages)
    if found is None:
        raise _unknown(user_id)
    return found


@router.delete("/{user_id:path}", response_model=Erased)
def erase_user(user_id: str, client: Drumbeat = Depends(workspace)) -> Erased:
    """Erase the user: their events, attributes, memberships, messages and in-app inbox
    are deleted in one transaction; their address is kept only as a sha256 hash, which
    the dispatcher checks before every email (an erased address is never mailed again)."""
    if not client.erase_user(user_id):
        raise _unknown(user_id)
    return Erased(user_id, True)
