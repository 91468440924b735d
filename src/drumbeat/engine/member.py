"""A membership as the engine sees it, and what the engine decides about one user.

These are built once per user per tick on the hot path, so they are plain slotted
dataclasses (a frozen dataclass costs a `object.__setattr__` per field to build): treat them
as immutable, and use `dataclasses.replace` to change one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from drumbeat.model.user import User

START = "(start)"  # position of a member entering, before its first step
END = "(end)"  # position of a member past its last step, waiting out the goal window


class State(StrEnum):
    ACTIVE = "active"
    CONVERTED = "converted"
    LEFT_AUDIENCE = "left_audience"
    INACTIVE = "inactive"
    COMPLETED = "completed"


@dataclass(slots=True)
class Member:
    """One user's membership of one campaign (the latest entry)."""

    user_id: str
    state: State
    position: str
    entry_count: int
    entered_at: float
    step_started_at: float
    next_due_at: float | None = None
    last_sent_at: float | None = None
    last_step: str | None = None
    exited_at: float | None = None
    exit_reason: str | None = None
    attributed: bool = False


@dataclass(slots=True)
class Subject:
    """Everything the engine needs about one user, loaded in bulk by a worker."""

    user: User
    member: Member | None  # None: never a member of this campaign
    facts: Mapping[str, int] = field(default_factory=dict)  # event condition key → count
    recent_sends: tuple[float, ...] = ()  # this user's messages, all campaigns, in the cap window
    may_enter: bool = False  # the planner selected this user for entry


@dataclass(slots=True)
class OutMessage:
    """One outbox row to write, in the same transaction as the membership change."""

    dedupe_key: str
    step_id: str
    user_id: str
    entry_count: int
    channel: str
    payload: Mapping[str, Any]
    created_at: float


@dataclass(slots=True)
class Decision:
    """The new membership of one user, and the messages it sends."""

    member: Member
    messages: tuple[OutMessage, ...] = ()
    entered: bool = False
