"""`drumbeat bench …`: the benchmarks, with figures written to BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from drumbeat.cli.context import state
from drumbeat.cli.output import console, table

if TYPE_CHECKING:
    from drumbeat.bench.report import Figure

app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Measure Drumbeat against raw floors."
)

UsersOpt = Annotated[int, typer.Option(min=100, help="How many synthetic users")]
PostgresOpt = Annotated[
    str | None,
    typer.Option(help="A PostgreSQL database the benchmark may fill (also measured when given)"),
]
WriteOpt = Annotated[
    Path | None, typer.Option(help="Write the figures into this Markdown file (e.g. BENCHMARKS.md)")
]


def show(name: str, figures: list[Figure], write: Path | None) -> None:
    from drumbeat.bench import report

    rows = [
        (
            f.what,
            f"{f.value:,.2f} {f.unit}",
            f"{f.floor:,.2f} {f.unit}" if f.floor is not None else "—",
            f.ratio(),
            f.target,
        )
        for f in figures
    ]
    console().print(table(name, ("what", "Drumbeat", "raw floor", "ratio", "target"), rows))
    if write is not None:
        report.write_section(write, name, report.markdown(name, report.command_line(), figures))
        console().print(f"written to {write}")


@app.command("store")
def store(
    ctx: typer.Context,
    users: UsersOpt = 1_000_000,
    seed: int = 7,
    sqlite: Annotated[
        Path | None, typer.Option(help="Folder for the SQLite file (default: a temporary one)")
    ] = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """Import rate, peak memory and audience count on SQLite (and PostgreSQL if given), the
    import in batches of DRUMBEAT_IMPORT_BATCH_SIZE, checked by DRUMBEAT_IMPORT_PROCESSES,
    as `drumbeat import` makes them."""
    import tempfile

    from drumbeat.bench.store import run

    settings = state(ctx).settings()
    sizes = settings.import_batch_size, settings.import_processes
    figures = []
    with tempfile.TemporaryDirectory(dir=sqlite) as folder:
        figures += run(f"sqlite:///{folder}/bench.db", users, seed, *sizes, Path(folder))
    if postgres:
        figures += run(postgres, users, seed, *sizes)
    show("store", figures, write)


@app.command("engine")
def engine(
    ctx: typer.Context,
    users: UsersOpt = 1_000_000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 2,
    write: WriteOpt = None,
) -> None:
    """Entry plus first message for N matching users on SQLite, and a 1%-due second tick."""
    from drumbeat.bench.engine import run

    batch_size = state(ctx).settings().batch_size
    show("engine", run(users, workers=workers, batch_size=batch_size), write)


@app.command("demo")
def demo(
    ctx: typer.Context,
    users: UsersOpt = 50_000,
    days: Annotated[int, typer.Option(min=1, help="Simulated days")] = 60,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 2,
    write: WriteOpt = None,
) -> None:
    """The whole demo story (`drumbeat demo`) on a fresh SQLite file, timed end to end."""
    from drumbeat.bench.demo import run

    batch_size = state(ctx).settings().batch_size
    show("demo", run(users, days=days, workers=workers, batch_size=batch_size), write)


@app.command("startup")
def startup(
    runs: Annotated[int, typer.Option(min=1, help="Runs of each command")] = 15,
    write: WriteOpt = None,
) -> None:
    """How long `drumbeat --help`, `--version`, `clock` and `stats` take to start, as new
    processes, against the interpreter starting and doing nothing."""
    from drumbeat.bench.startup import run

    show("startup", run(runs), write)


@app.command("dispatch")
def dispatch(
    small: Annotated[
        int, typer.Option(min=1000, help="Messages pending, the small outbox")
    ] = 10_000,
    large: Annotated[
        int, typer.Option(min=1000, help="Messages pending, the large outbox")
    ] = 1_000_000,
    sqlite: Annotated[
        Path | None, typer.Option(help="Folder for the SQLite file (default: a temporary one)")
    ] = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """A dispatcher's claim of 1,000 outbox rows with SMALL and with LARGE messages pending,
    on SQLite (and PostgreSQL if given), next to a plain indexed read of the same rows."""
    import tempfile

    from drumbeat.bench.dispatch import run
    from drumbeat.errors import InvalidInput

    if large <= small:
        raise InvalidInput(f"--large ({large:,}) must be more than --small ({small:,})")
    figures = []
    with tempfile.TemporaryDirectory(dir=sqlite) as folder:
        figures += run(f"sqlite:///{folder}/bench.db", small, large)
    if postgres:
        figures += run(postgres, small, large)
    show("dispatch", figures, write)


@app.command("pipeline")
def pipeline(
    ctx: typer.Context,
    batches: Annotated[int, typer.Option(min=3, help="Batches taken through the broker")] = 20,
    sqlite: Annotated[
        Path | None, typer.Option(help="Folder for the SQLite file (default: a temporary one)")
    ] = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """The broker's share of a batch in the distributed shape: publish + deliver + ack of its
    message and its claim by id, against the work of a batch of DRUMBEAT_BATCH_SIZE users
    (1,000 by default), on SQLite (and PostgreSQL if given). Needs DRUMBEAT_BROKER_URL."""
    import tempfile

    from drumbeat.bench.pipeline import run
    from drumbeat.cli.worker import needs_broker
    from drumbeat.errors import InvalidInput

    settings = state(ctx).settings()
    if settings.broker_url is None:
        raise InvalidInput(needs_broker("`drumbeat bench pipeline`"), what="settings")
    figures = []
    with tempfile.TemporaryDirectory(dir=sqlite) as folder:
        url = f"sqlite:///{folder}/bench.db"
        figures += run(url, settings.broker_url, batches, settings.batch_size)
    if postgres:
        figures += run(postgres, settings.broker_url, batches, settings.batch_size)
    show("pipeline", figures, write)
