"""`drumbeat outbox|members|inbox|stats`: look at what the flow did."""

from __future__ import annotations

from typing import Annotated

import typer

from drumbeat.cli.context import state
from drumbeat.cli.output import console, print_rows
from drumbeat.model.attributes import format_timestamp

FormatOpt = Annotated[str, typer.Option("--format", help="table or jsonl")]
LimitOpt = Annotated[int | None, typer.Option(help="At most this many rows")]


def _when(stamp: float | None) -> str | None:
    return format_timestamp(stamp) if stamp is not None else None


def outbox(
    ctx: typer.Context,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign")] = None,
    status: Annotated[
        str | None, typer.Option(help="pending, sending, sent, failed or dead")
    ] = None,
    fmt: FormatOpt = "table",
    limit: LimitOpt = None,
) -> None:
    """One line per message: campaign, step, user, channel, status, created, sent."""
    client = state(ctx).client()
    rows = [
        (
            r["campaign_key"],
            r["step_id"],
            r["user_id"],
            r["channel"],
            r["status"],
            _when(r["created_at"]),
            _when(r["sent_at"]),
            r["last_error"],
        )
        for r in client.store.outbox_rows(client.ws, campaign=campaign, status=status, limit=limit)
    ]
    print_rows(
        ("campaign", "step", "user_id", "channel", "status", "created_at", "sent_at", "error"),
        rows,
        fmt,
    )


def members(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Campaign key")],
    state_: Annotated[str | None, typer.Option("--state", help="Only this state")] = None,
    fmt: FormatOpt = "table",
    limit: LimitOpt = None,
) -> None:
    """A campaign's members: user, state, position, entered, exited, exit reason."""
    client = state(ctx).client()
    rows = [
        (
            m.user_id,
            str(m.state),
            m.position,
            m.entry_count,
            _when(m.entered_at),
            _when(m.exited_at),
            m.exit_reason,
        )
        for m in client.store.members(client.ws, key, state=state_, limit=limit)
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
    fmt: FormatOpt = "table",
) -> None:
    """A user's in-app messages, newest first."""
    from drumbeat.channels.in_app import inbox_messages

    client = state(ctx).client()
    rows = [
        (
            m["id"],
            m["campaign_key"],
            m["subject"],
            m["body"],
            _when(m["created_at"]),
            _when(m["read_at"]),
        )
        for m in inbox_messages(client.store, client.ws, user_id, unread_only=unread)
    ]
    print_rows(("id", "campaign", "subject", "body", "created_at", "read_at"), rows, fmt)


def stats(ctx: typer.Context) -> None:
    """Batches by status and messages by status in this store."""
    client = state(ctx).client()
    console.print(f"batches: {dict(client.store.batch_counts())}")
    totals: dict[str, int] = {}
    for (_, _, status), n in client.store.outbox_counts(client.ws).items():
        totals[status] = totals.get(status, 0) + n
    console.print(f"messages: {totals}")
