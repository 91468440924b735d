"""Benchmarks of data coming in: a users file imported (`store`), a file to its users' first
message (`loader`), identify calls (`event`) and the tracking API under load (`api`)."""

from pathlib import Path
from typing import Annotated

import typer

from drumbeat.cli.bench.figures import on_both_stores, scratch, show
from drumbeat.cli.bench.options import PostgresOpt, SqliteOpt, UsersOpt, WriteOpt
from drumbeat.cli.context import state


def store(
    ctx: typer.Context,
    users: UsersOpt = 1_000_000,
    seed: int = 7,
    sqlite: SqliteOpt = None,
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
    with scratch(postgres) as url:
        figures += run(url, users, seed, *sizes) if url else []
    show("store", figures, write)


def event(
    users: Annotated[int, typer.Option(min=10, help="Identify calls timed, each way")] = 2000,
    campaigns: Annotated[int, typer.Option(min=1, help="Active campaigns")] = 10,
    write: WriteOpt = None,
) -> None:
    """Identify → decision on SQLite: p50 and p99 of `identify` converting a member of
    CAMPAIGNS campaigns in the call, and of the plain write (the event path off), against
    a bare sqlite3 transaction of one row timed beside each call."""
    from drumbeat.bench.event import run

    show("event", run(users, campaigns), write)


def api(
    batches: Annotated[int, typer.Option(min=1, help="/v1/batch requests of 100 events")] = 2000,
    tracks: Annotated[int, typer.Option(min=1, help="single /v1/track requests")] = 5000,
    concurrency: Annotated[int, typer.Option(min=1, help="connections at once")] = 8,
    workers: Annotated[int, typer.Option(min=1, help="drumbeat serve --workers")] = 2,
    sqlite: SqliteOpt = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """The tracking API under load from another process on this host: events stored/s and
    latency of /v1/batch (100 events a request), requests/s and p99 of single /v1/track
    calls, on SQLite (and PostgreSQL if given), next to the Python API and /healthz."""

    from drumbeat.bench.api import run
    from drumbeat.errors import require

    require("fastapi", feature="drumbeat bench api", extra="api")
    figures = on_both_stores(
        lambda url: run(url, batches, tracks, concurrency, workers), sqlite, postgres
    )
    show("api", figures, write)


def loader(
    users: UsersOpt = 20_000,
    postgres: PostgresOpt = None,
    baseline_users: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="The baseline loads only the file's first N users and its rate is theirs"
            " (default: all; its cost per user is flat, one commit a user)",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="`drumbeat advance --workers`: its worker processes")
    ] = 1,
    write: WriteOpt = None,
) -> None:
    """N users from a file to their first message queued, on fresh stores: `drumbeat import
    users`, `campaign apply`, `advance` timed as whole commands, against a one-user-at-a-time
    loader (the baseline) in this process, over all users or the first --baseline-users;
    SQLite (and PostgreSQL if given)."""
    import tempfile

    from drumbeat.bench.loader import run
    from drumbeat.errors import InvalidInput

    sample = users if baseline_users is None else baseline_users
    if sample > users:
        raise InvalidInput(
            f"--baseline-users {sample:,} is more than --users {users:,}", what="options"
        )
    figures = []
    with tempfile.TemporaryDirectory() as folder:
        figures += run(None, users, sample, workers, Path(folder))
        if postgres:
            figures += run(postgres, users, sample, workers, Path(folder))
    show("loader", figures, write)
