"""`drumbeat batches [retry]`: the workspace's batches, and dead ones put back to work; each
a call to `Drumbeat.batches` or `Drumbeat.retry_batches` (src/drumbeat/client_operations.py),
printed."""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drumbeat.choices import BatchStatus, Format
from drumbeat.cli.context import client
from drumbeat.cli.output import print_rows, when
from drumbeat.cli.retry import clipped, listing_only, print_retried

if TYPE_CHECKING:
    from drumbeat.views import Batch

app = typer.Typer(
    rich_markup_mode=None,
    help="The workspace's batches (no command: list them); `retry` puts dead ones back.",
)
COLUMNS = ("id", "campaign", "lane", "kind", "users", "status", "attempts", "created_at", "error")


@app.callback(invoke_without_command=True)
def listing(
    ctx: typer.Context,
    status: Annotated[BatchStatus | None, typer.Option(help="Only this status")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format")] = Format.TABLE,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many rows [default: all]")
    ] = None,
) -> None:
    """One line per batch, oldest first: id, campaign, lane, kind, users, status, attempts,
    created, and why its last holder let go of it."""
    if ctx.invoked_subcommand is not None:
        listing_only(ctx, "batches")
        return
    found = client(ctx).batches(status, campaign, limit=limit)
    print_rows(COLUMNS, _rows(found, fmt), fmt)


@app.command("retry")
def retry(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None, typer.Argument(metavar="ID", help="Ids of dead batches")
    ] = None,
    all_dead: Annotated[bool, typer.Option(help="Every dead batch of the workspace")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show what would be retried")] = False,
) -> None:
    """Put dead batches back to pending, their attempts reset (their error stays until they
    run): the next tick runs them. An id that is not a dead batch of this workspace refuses
    them all."""
    found = client(ctx).retry_batches(ids, all_dead=all_dead, dry_run=dry_run)
    if found:
        print_rows(COLUMNS, _rows(found, Format.TABLE))
    print_retried("batches", [b.id for b in found], dry_run, "the next tick runs them")


def _rows(found: "Iterable[Batch]", fmt: Format) -> list[tuple[Any, ...]]:
    return [
        (
            b.id,
            b.campaign,
            b.lane,
            b.kind,
            len(b.user_ids),
            b.status,
            b.attempts,
            when(b.created_at),
            b.error if fmt == Format.JSONL else clipped(b.error),
        )
        for b in found
    ]
