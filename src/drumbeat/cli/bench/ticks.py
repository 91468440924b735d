"""Benchmarks of the engine's ticks: a first tick and its statements (`engine`), a tick with
nothing to do (`idle`), after a few users changed (`changed`), through the user cache
(`access`), beside a slow lane (`lanes`) and through the broker (`pipeline`), and the capacity
model's prediction of one (`capacity`)."""

from pathlib import Path
from typing import Annotated

import typer

from drumbeat.cli.bench.figures import on_both_stores, scratch, show
from drumbeat.cli.bench.options import PostgresOpt, SqliteOpt, UsersOpt, WriteOpt
from drumbeat.cli.context import state
from drumbeat.cli.output import console


def engine(
    ctx: typer.Context,
    users: UsersOpt = 1_000_000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 2,
    postgres: PostgresOpt = None,
    postgres_workers: Annotated[
        str, typer.Option(help="Numbers of Celery workers for the PostgreSQL tick, e.g. 1,2")
    ] = "2",
    round_trip_users: Annotated[
        int | None, typer.Option(min=100, help="Users of the statement count (default: --users)")
    ] = None,
    write: WriteOpt = None,
) -> None:
    """Entry plus first message for N matching users on SQLite, and a 1%-due second tick;
    with --postgres and DRUMBEAT_BROKER_URL, the same first tick on PostgreSQL through
    `drumbeat worker --lane fast` processes against a COPY floor; then the statements per
    1,000 users of the batch path, dispatch included, on SQLite (and PostgreSQL if given)."""
    import tempfile

    from drumbeat.bench import engine_postgres, round_trips
    from drumbeat.bench.engine import run

    settings = state(ctx).settings()
    counted = round_trip_users or users
    figures = run(users, workers=workers, batch_size=settings.batch_size)
    with tempfile.TemporaryDirectory() as folder:
        if postgres and settings.broker_url:
            counts = worker_counts(postgres_workers)
            figures += engine_postgres.run(
                postgres, settings.broker_url, users, counts, settings.batch_size, Path(folder)
            )
        elif postgres:
            console().print("DRUMBEAT_BROKER_URL not set: the PostgreSQL tick is left out")
        figures += round_trips.run(f"sqlite:///{folder}/trips.db", counted, settings)
    with scratch(postgres) as url:
        figures += round_trips.run(url, counted, settings) if url else []
    show("engine", figures, write)


def worker_counts(text: str) -> list[int]:
    """`--postgres-workers 1,2` as positive numbers, or InvalidInput."""
    return positive_numbers(text, "--postgres-workers", "give positive numbers, comma-separated")


def access(
    users: UsersOpt = 10_000,
    changed: Annotated[int, typer.Option(min=1, help="Users changed since the last tick")] = 1000,
    campaigns: Annotated[int, typer.Option(min=1, help="Active campaigns")] = 100,
    redis: Annotated[
        str | None, typer.Option(help="A Redis URL: measure the Redis cache too")
    ] = None,
    write: WriteOpt = None,
) -> None:
    """Whether the user cache pays for itself: one tick of CAMPAIGNS campaigns over the same
    CHANGED users on SQLite, with no cache (the floor), the memory cache and Redis if given;
    store reads of users and seconds."""
    from drumbeat.bench.access import run
    from drumbeat.errors import InvalidInput

    if changed > users:
        raise InvalidInput(f"--changed ({changed:,}) must be at most --users ({users:,})")
    show("access", run(users, changed, campaigns, redis), write)


def idle(
    ctx: typer.Context,
    users: UsersOpt = 100_000,
    campaigns: Annotated[
        str, typer.Option(help="Numbers of active campaigns, comma-separated, ascending")
    ] = "10,100,1000",
    sqlite: SqliteOpt = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """A warm runner's tick when nothing changed and nothing is due, with each number of
    active campaigns over N users, on SQLite (and PostgreSQL if given), against the same
    tick with no campaign."""
    from drumbeat.bench.idle import run_all

    with scratch(postgres) as url:
        found = run_all(users, campaign_sizes(campaigns), state(ctx).settings(), sqlite, url)
    show("idle", found, write)


def campaign_sizes(text: str) -> list[int]:
    """`--campaigns 10,100,1000` as ascending positive numbers, or InvalidInput."""
    from drumbeat.errors import InvalidInput

    wanted = "give ascending positive numbers, comma-separated (10,100,1000)"
    sizes = positive_numbers(text, "--campaigns", wanted)
    if sizes != sorted(set(sizes)):
        raise InvalidInput(f"--campaigns {text!r}: {wanted}")
    return sizes


def positive_numbers(text: str, option: str, wanted: str) -> list[int]:
    """`text` as comma-separated positive numbers, or InvalidInput saying `wanted`."""
    from drumbeat.errors import InvalidInput

    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        numbers = []
    if not numbers or any(n < 1 for n in numbers):
        raise InvalidInput(f"{option} {text!r}: {wanted}")
    return numbers


def changed(
    ctx: typer.Context,
    users: UsersOpt = 100_000,
    campaigns: Annotated[int, typer.Option(min=2, help="Active campaigns")] = 100,
    sqlite: SqliteOpt = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """A warm runner's tick after 1% of N users changed in an attribute one of CAMPAIGNS
    campaigns reads, against the same share changed in one they all read (what any change
    cost before the planner knew which names changed), on SQLite (and PostgreSQL if given)."""
    from drumbeat.bench.changed import run

    settings = state(ctx).settings()
    figures = on_both_stores(lambda url: run(url, users, campaigns, settings), sqlite, postgres)
    show("changed", figures, write)


def capacity(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=10, help="Users of the measured run (then twice)")] = (
        10_000
    ),
    sqlite: SqliteOpt = None,
    postgres: PostgresOpt = None,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of N then 2N (medians)")] = 3,
    write: WriteOpt = None,
) -> None:
    """The capacity model checked: measure a run at N users, predict 2N from the stored
    timings, run 2N, `--rounds` times over (N, 2N, N, 2N, …); the median predicted tick time
    against the median measured, store queries and batches (the raw floor column holds the
    measured figure: the ratio is predicted / measured)."""
    from drumbeat.bench.capacity import NOTES, run_all

    with scratch(postgres) as url:
        found = run_all(users, rounds, state(ctx).settings(), sqlite, url)
    show("capacity", found, write, NOTES)


def lanes(
    ctx: typer.Context,
    arriving: Annotated[
        int, typer.Option(min=1, help="Users matching the fast campaign, a tick")
    ] = 500,
    backlog: Annotated[
        int, typer.Option(min=100, help="Users of the slow lane's campaign")
    ] = 100_000,
    ticks: Annotated[int, typer.Option(min=1, help="Ticks measured, alone and loaded")] = 20,
    workers: Annotated[int, typer.Option(help="Worker processes of the fast lane")] = 1,
    slow_workers: Annotated[int, typer.Option(help="Worker processes of the slow lane")] = 1,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """Lane isolation on a fresh SQLite file (and a fresh PostgreSQL database if given): a
    fast campaign's batch wait p99 (end of planning to its lane drained) alone, and while
    the slow lane holds a backlog, as `drumbeat run` ticks."""
    from drumbeat.bench.lanes import run

    batch_size = state(ctx).settings().batch_size
    figures = []
    for url in (None, postgres) if postgres else (None,):
        figures += run(
            url,
            arriving=arriving,
            backlog=backlog,
            ticks=ticks,
            workers=workers,
            slow_workers=slow_workers,
            batch_size=batch_size,
        )
    show("lanes", figures, write)


def pipeline(
    ctx: typer.Context,
    batches: Annotated[
        int, typer.Option(min=3, help="Batches taken through the broker, a run")
    ] = 20,
    runs: Annotated[
        int, typer.Option(min=1, help="Runs, each in a process of its own; medians over all")
    ] = 5,
    sqlite: SqliteOpt = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """The broker's share of a batch in the distributed shape: publish + deliver + ack of its
    message and its claim by id, against the work of a batch of DRUMBEAT_BATCH_SIZE users
    (1,000 by default), on SQLite (and PostgreSQL if given), beside the same with the
    claim's statement alone. Needs DRUMBEAT_BROKER_URL."""

    from drumbeat.bench.pipeline import run
    from drumbeat.cli.worker import needs_broker
    from drumbeat.errors import InvalidInput

    settings = state(ctx).settings()
    if settings.broker_url is None:
        raise InvalidInput(needs_broker("`drumbeat bench pipeline`"), what="settings")
    broker, size = settings.broker_url, settings.batch_size
    figures = on_both_stores(lambda url: run(url, broker, batches, size, runs), sqlite, postgres)
    show("pipeline", figures, write)
