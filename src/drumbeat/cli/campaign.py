"""`drumbeat campaign …`: check, apply, list, show, pause, resume, archive — each a call to
`Drumbeat.campaigns` (src/drumbeat/campaign_api.py), printed."""

from pathlib import Path
from typing import Annotated

import typer

from drumbeat.choices import Format
from drumbeat.cli.context import client
from drumbeat.cli.output import console, counts, print_rows, when

app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Campaign definitions: check, apply, inspect."
)
PathsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Campaign files (YAML or JSON), or folders of them (*.yaml, *.yml, *.json)"
    ),
]
KeyArg = Annotated[str, typer.Argument(help="The campaign's key")]


@app.command("check")
def check_cmd(ctx: typer.Context, paths: PathsArg) -> None:
    """Validate campaign files together; print each one's step tree and audience size now."""
    for checked in client(ctx).campaigns.check(paths):
        console().print(f"[bold]{checked.key}[/]: {checked.name} — valid ({checked.source})")
        for line in checked.steps:
            console().print(f"  {line}", markup=False)
        console().print(f"  audience now: {checked.audience:,} users")


@app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    paths: PathsArg,
    activate: Annotated[bool, typer.Option(help="Make them active")] = False,
    dry_run: Annotated[bool, typer.Option(help="Say what would happen")] = False,
) -> None:
    """Create each campaign or store its new version (members keep their step if it exists),
    all in one transaction: if one file has a problem, nothing is stored.

    When a campaign is live (active or paused), the attributes its rules compare get an
    index on SQLite: a one-off build of a few seconds per million users."""
    for done in client(ctx).campaigns.apply(paths, activate=activate, dry_run=dry_run):
        if done.version > 1:
            console().print(
                f"{done.key}: version {done.version}; {done.kept:,} active members keep their step"
            )
        for position, n in sorted(done.moved.items()):
            console().print(
                f"  {n:,} members wait at {position!r}, which this version "
                "removes: they will exit as completed",
                markup=False,
            )
        stored = f"stored, {done.status}" if done.status is not None else "not stored"
        console().print(f"{done.key}: version {done.version} {stored}")
    if dry_run:
        console().print("dry run: nothing stored")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", help="Output format")] = Format.TABLE,
) -> None:
    """Every campaign of the workspace with its status, members, lane and why."""
    rows = [
        (c.key, c.name, c.status, c.version, c.active, c.members, c.lane, c.lane_why)
        for c in client(ctx).campaigns.list()
    ]
    columns = ("key", "name", "status", "version", "active", "members", "lane", "why")
    print_rows(columns, rows, fmt)


@app.command("show")
def show_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """A campaign's definition, lane and why, members by state and position, messages by
    step."""
    shown = client(ctx).campaigns.show(key)
    console().print(
        f"[bold]{key}[/]: {shown.name} — {shown.status}, version {shown.version}, "
        f"updated {when(shown.updated_at)}"
    )
    console().print(f"lane: {shown.lane} ({shown.lane_why})", markup=False)
    for line in shown.steps:
        console().print(f"  {line}", markup=False)
    console().print(f"members: {counts(shown.members)}")
    waiting = ", ".join(f"{n:,} at {step}" for step, n in sorted(shown.positions.items()))
    console().print(f"active members: {waiting or 'none'}", markup=False)
    statuses = sorted({status for by_status in shown.messages.values() for status in by_status})
    rows = [
        (step, *(by_status.get(status, 0) for status in statuses))
        for step, by_status in shown.messages.items()
    ]
    if rows:
        print_rows(("step", *statuses), rows, title="messages by step")


@app.command("pause")
def pause_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Stop planning and running the campaign; members stay where they are."""
    client(ctx).campaigns.pause(key)
    console().print(f"{key}: paused")


@app.command("resume")
def resume_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Make a draft or paused campaign active."""
    client(ctx).campaigns.resume(key)
    console().print(f"{key}: active")


@app.command("archive")
def archive_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Retire the campaign for good: nothing runs; its history stays; attribute indexes no
    other live campaign reads are dropped."""
    client(ctx).campaigns.archive(key)
    console().print(f"{key}: archived")
