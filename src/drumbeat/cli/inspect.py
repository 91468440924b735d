"""`drumbeat outbox|members|inbox`: look at what the flow did."""

from __future__ import annotations

from typing import Annotated

import typer

from drumbeat.choices import Format, MemberState, MessageStatus
from drumbeat.cli.context import client
from drumbeat.cli.output import print_rows, when

FormatOpt = Annotated[Format, typer.Option("--format", help="Output format")]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="At most this many rows [default: all]")]


def outbox(
    ctx: typer.Context,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign")] = None,
    status: Annotated[MessageStatus | None, typer.Option(help="Only this status")] = None,
    fmt: FormatOpt = Format.TABLE,
    limit: LimitOpt = None,
) -> None:
    """One line per message: campaign, step, user, channel, status, created, sent."""
    rows = [
        (
            m.campaign,
            m.step,
            m.user_id,
            m.channel,
            m.status,
            when(m.created_at),
            when(m.sent_at),
            m.error,
        )
        for m in client(ctx).outbox(campaign, status, limit=limit)
    ]
    print_rows(
        ("campaign", "step", "user_id", "channel", "status", "created_at", "sent_at", "error"),
        rows,
        fmt,
    )


def members(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Campaign key")],
    state: Annotated[MemberState | None, typer.Option("--state", help="Only this state")] = None,
    fmt: FormatOpt = Format.TABLE,
    limit: LimitOpt = None,
) -> None:
    """A campaign's members: user, state, position, entered, exited, exit reason."""
    rows = [
        (
            m.user_id,
            m.state,
            m.position,
            m.entry,
            when(m.entered_at),
            when(m.exited_at),
            m.exit_reason,
        )
        for m in client(ctx).members(key, state, limit=limit)
    ]
    print_rows(
        ("user_id", "state", "position", "entry", "entered_at", "exited_at", "exit_reason"),
        rows,
        fmt,
    )


def inbox(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The user")],
    unread: Annotated[bool, typer.Option(help="Only unread messages")] = False,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """A user's in-app messages, newest first."""
    rows = [
        (
            m["id"],
            m["campaign_key"],
            m["subject"],
            m["body"],
            when(m["created_at"]),
            when(m["read_at"]),
        )
        for m in client(ctx).inbox(user_id, unread_only=unread)
    ]
    print_rows(("id", "campaign", "subject", "body", "created_at", "read_at"), rows, fmt)
