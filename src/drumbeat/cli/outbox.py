"""`drumbeat outbox [retry]`: the workspace's messages, and dead ones put back to be sent;
each a call to `Drumbeat.outbox` or `Drumbeat.retry_messages` (src/drumbeat/client_operations.py),
printed."""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drumbeat.choices import Format, MessageStatus
from drumbeat.cli.context import client
from drumbeat.cli.output import print_rows, when
from drumbeat.cli.retry import clipped, listing_only, print_retried

if TYPE_CHECKING:
    from drumbeat.views import Message

app = typer.Typer(
    rich_markup_mode=None,
    help="The workspace's messages (no command: list them); `retry` puts dead ones back.",
)
COLUMNS = (
    "id",
    "campaign",
    "step",
    "user_id",
    "channel",
    "status",
    "attempts",
    "created_at",
    "sent_at",
    "error",
)
CampaignOpt = Annotated[str | None, typer.Option(help="Only this campaign")]


@app.callback(invoke_without_command=True)
def listing(
    ctx: typer.Context,
    campaign: CampaignOpt = None,
    status: Annotated[MessageStatus | None, typer.Option(help="Only this status")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format")] = Format.TABLE,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many rows [default: all]")
    ] = None,
) -> None:
    """One line per message, oldest first: id, campaign, step, user, channel, status,
    attempts, created, sent, and its last error."""
    if ctx.invoked_subcommand is not None:
        listing_only(ctx, "outbox")
        return
    found = client(ctx).outbox(campaign, status, limit=limit)
    print_rows(COLUMNS, _rows(found, fmt), fmt)


@app.command("retry")
def retry(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None, typer.Argument(metavar="ID", help="Ids of dead messages")
    ] = None,
    all_dead: Annotated[bool, typer.Option(help="Every dead message of the workspace")] = False,
    campaign: CampaignOpt = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be retried")] = False,
) -> None:
    """Put dead messages back to pending, due now, their attempts and error cleared: the
    next dispatch (`advance`, `run`) sends them. An id that is not a dead message of this
    workspace refuses them all; `--campaign` picks among `--all-dead`."""
    found = client(ctx).retry_messages(ids, all_dead=all_dead, campaign=campaign, dry_run=dry_run)
    if found:
        print_rows(COLUMNS, _rows(found, Format.TABLE))
    print_retried("messages", [m.id for m in found], dry_run, "the next dispatch sends them")


def _rows(found: "Iterable[Message]", fmt: Format) -> list[tuple[Any, ...]]:
    return [
        (
            m.id,
            m.campaign,
            m.step,
            m.user_id,
            m.channel,
            m.status,
            m.attempts,
            when(m.created_at),
            when(m.sent_at),
            m.error if fmt == Format.JSONL else clipped(m.error),
        )
        for m in found
    ]
