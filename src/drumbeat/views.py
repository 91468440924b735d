"""What the Python API returns: plain, typed records (times in epoch seconds) that print,
compare and serialise (`dataclasses.asdict`) without the store behind them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Checked:
    """A definition that passed `campaigns.check`: its step tree and its audience now."""

    source: str  # the file, or `[i]` for the i-th definition given as data
    key: str
    name: str
    steps: list[str]
    audience: int


@dataclass(frozen=True)
class Applied:
    """A version stored by `campaigns.apply` (or that would be, with `dry_run`)."""

    source: str
    key: str
    version: int
    status: str | None  # None on a dry run: nothing was stored
    kept: int = 0  # active members whose step this version keeps
    moved: dict[str, int] = field(default_factory=dict)  # removed position → members exiting


@dataclass(frozen=True)
class CampaignSummary:
    key: str
    name: str
    status: str
    version: int
    active: int  # active members
    members: int  # members in any state
    lane: str  # the lane its batches go to: fast, slow
    lane_why: str  # pinned, measured 0.42 ms/user, webhook until measured, default, …


@dataclass(frozen=True)
class CampaignDetail:
    key: str
    name: str
    status: str
    version: int
    updated_at: float
    steps: list[str]  # the step tree, one line a step
    members: dict[str, int]  # state → members
    positions: dict[str, int]  # step → active members waiting there
    messages: dict[str, dict[str, int]]  # step → status → messages
    lane: str
    lane_why: str


@dataclass(frozen=True)
class Message:
    id: int  # the outbox row's: ids grow, so `outbox(after=id)` pages on
    campaign: str
    step: str
    user_id: str
    channel: str
    status: str
    attempts: int
    created_at: float
    sent_at: float | None
    error: str | None


@dataclass(frozen=True)
class Membership:
    user_id: str
    state: str
    position: str
    entry: int
    entered_at: float
    exited_at: float | None
    exit_reason: str | None
    campaign: str | None = None  # given where memberships of several campaigns are listed


@dataclass
class Advanced:
    """What `advance` did: ticks run and their totals (`sent` counts by status)."""

    to: float
    ticks: int = 0
    entered: int = 0
    queued: int = 0
    sent: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    """A unit of planned work: its users, and how its claims went (`error`: why its last
    holder let go of it, kept after a retry until a worker overwrites it)."""

    id: int
    campaign: str
    lane: str
    kind: str  # enter: users who may enter; advance: members to move on
    user_ids: list[str]
    status: str  # pending, running, done, skipped, dead
    attempts: int
    created_at: float
    error: str | None


@dataclass(frozen=True)
class PathConversion:
    """The members a split's path received, and how many of them reached the goal."""

    entered: int
    converted: int
    rate: float | None  # converted / entered; None when nobody entered


@dataclass(frozen=True)
class CampaignStats:
    """What a campaign did: messages by step and status, members by state, exits by
    reason, and conversion per path of its first split (the control group's comparison)."""

    key: str
    messages: dict[str, dict[str, int]]  # step → status → messages
    members: dict[str, int]  # state → members
    exits: dict[str, int]  # exit reason → members who left for it
    split: str | None  # the id of the split compared, if the campaign has one
    paths: dict[str, PathConversion]  # path → its members and conversions


@dataclass(frozen=True)
class UserDetail:
    """A user with their campaigns and latest messages (`Drumbeat.user`)."""

    user_id: str
    email: str | None
    timezone: str | None
    unsubscribed: bool
    created_at: float | None
    last_seen_at: float | None
    attributes: dict[str, object]
    memberships: list[Membership]  # `Membership.campaign` says which
    messages: list[Message]  # newest first


def message_of(row: Mapping[str, Any]) -> Message:
    """A message as the store reads its outbox row."""
    return Message(
        row["id"],
        row["campaign_key"],
        row["step_id"],
        row["user_id"],
        row["channel"],
        row["status"],
        row["attempts"],
        row["created_at"],
        row["sent_at"],
        row["last_error"],
    )


def batch_of(row: Mapping[str, Any]) -> Batch:
    """A batch as the store reads its row."""
    return Batch(
        row["id"],
        row["campaign_key"],
        row["lane"],
        row["kind"],
        list(row["user_ids"]),
        row["status"],
        row["attempts"],
        row["created_at"],
        row["last_error"],
    )
