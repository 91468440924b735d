"""`drumbeat members|inbox`: look at what the flow did (`drumbeat outbox`: cli/outbox.py)."""

from typing import Annotated

import typer

from drumbeat.choices import Format, MemberState
from drumbeat.cli.context import client
from drumbeat.cli.output import print_rows, when

FormatOpt = Annotated[Format, typer.Option("--format", help="Output format")]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="At most this many rows [default: all]")]


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
