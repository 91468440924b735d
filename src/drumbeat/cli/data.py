"""`drumbeat import …`, `drumbeat attributes …`, `drumbeat db …`: getting data in."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from drumbeat.choices import FileFormat, Format
from drumbeat.cli.context import state
from drumbeat.cli.output import console, console_err, print_rows

if TYPE_CHECKING:
    from drumbeat.ingest.files import Kind

import_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Import users or events from JSONL or CSV."
)
attributes_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Attribute types of the workspace."
)
db_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The store of record's schema and attribute indexes.",
)

FileArg = Annotated[Path, typer.Argument(help="A .jsonl or .csv file", exists=False)]
FormatOpt = Annotated[
    FileFormat | None, typer.Option("--format", help="File format [default: from the suffix]")
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-invalid", help="Import the good lines; write the bad ones to a rejects file"
    ),
]
RejectsOpt = Annotated[
    Path | None, typer.Option(help="Where --skip-invalid writes bad lines (default: FILE.rejects)")
]


BatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        help="Lines per batch written [env DRUMBEAT_IMPORT_BATCH_SIZE, default 100000]",
    ),
]
ProcessesOpt = Annotated[
    int | None,
    typer.Option(
        "--processes",
        min=1,
        help="Processes that check a users file of 8 MiB or more "
        "[env DRUMBEAT_IMPORT_PROCESSES, default 2]",
    ),
]


def _import(
    ctx: typer.Context,
    path: Path,
    kind: "Kind",
    fmt: str | None,
    skip_invalid: bool,
    rejects: Path | None,
    batch_size: int | None,
    processes: int | None = None,
) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from drumbeat.ingest.importer import import_file

    options = state(ctx)
    client = options.client()
    options.record_timings()
    size = path.stat().st_size if path.is_file() else 0
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console_err(), transient=True) as progress:
        task = progress.add_task(f"importing {kind}", total=size)
        report = import_file(
            client.store,
            client.ws,
            path,
            kind,
            now=client.clock(),
            fmt=fmt,
            skip_invalid=skip_invalid,
            rejects_path=rejects,
            progress=lambda n: progress.advance(task, n),
            batch_size=batch_size or options.settings().import_batch_size,
            processes=processes or options.settings().import_processes,
        )
    checked = (
        f"; checked by {report.check_processes} processes" if report.check_processes > 1 else ""
    )
    console().print(
        f"imported {report.imported:,} {kind} from {path} "
        f"({report.written:,} rows written or changed{checked})"
    )
    if report.rejected:
        console_err().print(
            f"[yellow]skipped {report.rejected:,} bad lines, written to {report.rejects_path}:[/]"
        )
        for problem in report.problems[:50]:
            console_err().print(f"  {problem}", markup=False)


@import_app.command("users")
def import_users(
    ctx: typer.Context,
    path: FileArg,
    fmt: FormatOpt = None,
    skip_invalid: SkipOpt = False,
    rejects: RejectsOpt = None,
    batch_size: BatchOpt = None,
    processes: ProcessesOpt = None,
) -> None:
    """Import identify calls: {"user_id": …, "traits": {…}} a line, or CSV with a user_id column."""
    _import(ctx, path, "users", fmt, skip_invalid, rejects, batch_size, processes)


@import_app.command("events")
def import_events(
    ctx: typer.Context,
    path: FileArg,
    fmt: FormatOpt = None,
    skip_invalid: SkipOpt = False,
    rejects: RejectsOpt = None,
    batch_size: BatchOpt = None,
) -> None:
    """Import track calls: {"user_id", "event", "timestamp", "properties", "message_id"}."""
    _import(ctx, path, "events", fmt, skip_invalid, rejects, batch_size)


@attributes_app.command("list")
def attributes_list(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", help="Output format")] = Format.TABLE,
) -> None:
    """Every custom attribute with its type."""
    client = state(ctx).client()
    types = client.store.attribute_types(client.ws)
    print_rows(("attribute", "type"), sorted(types.items()), fmt)


@attributes_app.command("declare")
def attributes_declare(
    ctx: typer.Context,
    name: str,
    kind: Annotated[str, typer.Argument(help="string, number, boolean or timestamp")],
) -> None:
    """Fix an attribute's type before data arrives (e.g. a zip code as a string)."""
    state(ctx).client().declare_attribute(name, kind)
    console().print(f"{name}: {kind}")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply pending migrations (opening the store does this too, then syncs the indexes)."""
    from drumbeat.store import migrate, open_store

    open_store(state(ctx).settings().database_url).close()
    console().print(f"schema at revision {migrate.head()}")


@db_app.command("indexes")
def db_indexes(
    ctx: typer.Context,
    sync: Annotated[
        bool, typer.Option("--sync", help="First build the missing indexes and drop unused ones")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Output format")] = Format.TABLE,
) -> None:
    """The indexes on custom attributes and time fields that live campaigns' rules compare
    (every workspace).

    `campaign apply` and status changes keep them in step; state `missing`, `unused` or
    `invalid` (a failed PostgreSQL build) means that was interrupted, and --sync sets it
    right."""
    store = state(ctx).client().store
    if sync:
        done = store.sync_attribute_indexes()
        rebuilt = f", rebuilt {len(done.rebuilt)} (invalid)" if done.rebuilt else ""
        console_err().print(f"created {len(done.created)}, dropped {len(done.dropped)}{rebuilt}")
    rows = [
        (
            ix.attribute if ix.attribute is not None else "?",
            ix.name,
            ix.state,
            ", ".join(ix.campaigns),
            ix.expression,
        )
        for ix in store.attribute_indexes()
    ]
    print_rows(("attribute", "index", "state", "read by", "expression"), rows, fmt)
