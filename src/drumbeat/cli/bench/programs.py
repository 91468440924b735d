"""Benchmarks of whole programs: the demo story end to end (`demo`), and how long the
command takes to start (`startup`)."""

from typing import Annotated

import typer

from drumbeat.cli.bench.figures import show
from drumbeat.cli.bench.options import UsersOpt, WriteOpt
from drumbeat.cli.context import state


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


def startup(
    runs: Annotated[int, typer.Option(min=1, help="Runs of each command")] = 15,
    write: WriteOpt = None,
) -> None:
    """How long `drumbeat --help`, `--version`, `clock` and `stats` take to start, as new
    processes, against the interpreter starting and doing nothing."""
    from drumbeat.bench.startup import run

    show("startup", run(runs), write)
