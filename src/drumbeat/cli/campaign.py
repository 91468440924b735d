"""`drumbeat campaign …`: check, apply, list, show, pause, resume, archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drumbeat.campaigns import apply, check, plan_apply, read_campaign, set_status, step_tree
from drumbeat.cli.context import state
from drumbeat.cli.output import console, print_rows
from drumbeat.model.attributes import format_timestamp

app = typer.Typer(no_args_is_help=True, help="Campaign definitions: check, apply, inspect.")
FileArg = Annotated[Path, typer.Argument(help="A campaign file, YAML or JSON")]
KeyArg = Annotated[str, typer.Argument(help="The campaign's key")]


@app.command("check")
def check_cmd(ctx: typer.Context, path: FileArg) -> None:
    """Validate a campaign file; print its step tree and its audience size now."""
    client = state(ctx).client()
    campaign = read_campaign(path)
    check(campaign, client.store, client.ws)
    console.print(f"[bold]{campaign.key}[/]: {campaign.name} — valid")
    for line in step_tree(campaign.steps, "  "):
        console.print(line, markup=False)
    console.print(f"audience now: {client.audience_count(campaign.audience):,} users")


@app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    path: FileArg,
    activate: Annotated[bool, typer.Option(help="Make it active")] = False,
    dry_run: Annotated[bool, typer.Option(help="Say what would happen")] = False,
) -> None:
    """Create the campaign or store a new version (members keep their step if it exists).

    When the campaign is live (active or paused), the attributes its rules compare get an
    index on SQLite: a one-off build of a few seconds per million users."""
    client = state(ctx).client()
    plan = plan_apply(read_campaign(path), client.store, client.ws)
    key = plan.campaign.key
    if plan.version > 1:
        console.print(
            f"{key}: version {plan.version}; {plan.kept:,} active members keep their step"
        )
        for position, count in sorted(plan.moved.items()):
            console.print(
                f"  {count:,} members wait at {position!r}, which this version "
                "removes: they will exit as completed",
                markup=False,
            )
    if dry_run:
        console.print("dry run: nothing stored")
        return
    version = apply(plan, client.store, client.ws, client.clock(), activate=activate)
    status = client.store.campaign(client.ws, key)
    console.print(f"{key}: version {version} stored, {status.status if status else '?'}")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
) -> None:
    """Every campaign of the workspace with its status and members."""
    client = state(ctx).client()
    rows = []
    for row in client.store.campaigns(client.ws):
        counts = client.store.member_counts(client.ws, row.key)
        rows.append(
            (
                row.key,
                row.name,
                row.status,
                row.version,
                counts.get("active", 0),
                sum(counts.values()),
            )
        )
    print_rows(("key", "name", "status", "version", "active", "members"), rows, fmt)


@app.command("show")
def show_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """A campaign's definition, members by state and position, messages by step."""
    from drumbeat.model.campaign import parse_campaign

    client = state(ctx).client()
    row = client.store.campaign(client.ws, key)
    if row is None:
        from drumbeat.errors import InvalidInput

        raise InvalidInput(f"no campaign {key!r} in this workspace")
    campaign = parse_campaign(row.definition)
    console.print(
        f"[bold]{key}[/]: {row.name} — {row.status}, version {row.version}, "
        f"updated {format_timestamp(row.updated_at)}"
    )
    for line in step_tree(campaign.steps, "  "):
        console.print(line, markup=False)
    console.print(f"members by state: {client.store.member_counts(client.ws, key)}")
    console.print(f"active members by step: {client.store.positions(client.ws, key)}")
    sent = {
        (step, status): n
        for (c, step, status), n in client.store.outbox_counts(client.ws).items()
        if c == key
    }
    print_rows(
        ("step", "status", "messages"),
        [(step, status, n) for (step, status), n in sorted(sent.items())],
        "table",
    )


def _status(ctx: typer.Context, key: str, status: str) -> None:
    client = state(ctx).client()
    set_status(client.store, client.ws, key, status, client.clock())
    console.print(f"{key}: {status}")


@app.command("pause")
def pause_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Stop planning and running the campaign; members stay where they are."""
    _status(ctx, key, "paused")


@app.command("resume")
def resume_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Make a draft or paused campaign active."""
    _status(ctx, key, "active")


@app.command("archive")
def archive_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Retire the campaign for good: nothing runs; its history stays; attribute indexes no
    other live campaign reads are dropped."""
    _status(ctx, key, "archived")
