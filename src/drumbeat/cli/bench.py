"""`drumbeat bench …`: the benchmarks, with figures written to BENCHMARKS.md."""

from collections.abc import Callable
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
SqliteOpt = Annotated[
    Path | None, typer.Option(help="Folder for the SQLite file (default: a temporary one)")
]
WriteOpt = Annotated[
    Path | None, typer.Option(help="Write the figures into this Markdown file (e.g. BENCHMARKS.md)")
]


def show(name: str, figures: "list[Figure]", write: Path | None, notes: str = "") -> None:
    from drumbeat.bench import report

    rows = [(f.what, *f.cells(), f.ratio(), f.target) for f in figures]
    console().print(table(name, ("what", "Drumbeat", "raw floor", "ratio", "target"), rows))
    if write is not None:
        report.write_section(
            write, name, report.markdown(name, report.command_line(), figures, notes)
        )
        console().print(f"written to {write}")


@app.command("store")
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
    if postgres:
        figures += run(postgres, users, seed, *sizes)
    show("store", figures, write)


@app.command("engine")
def engine(
    ctx: typer.Context,
    users: UsersOpt = 1_000_000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 2,
    postgres: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL database: the statements are counted there, and (with"
            " DRUMBEAT_BROKER_URL) the first tick is measured in fresh databases created and"
            " dropped on its server"
        ),
    ] = None,
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
    if postgres:
        figures += round_trips.run(postgres, counted, settings)
    show("engine", figures, write)


def worker_counts(text: str) -> list[int]:
    """`--postgres-workers 1,2` as positive numbers, or InvalidInput."""
    from drumbeat.errors import InvalidInput

    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or any(n < 1 for n in counts):
        raise InvalidInput(f"--postgres-workers {text!r}: give positive numbers, comma-separated")
    return counts


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
    pending: Annotated[
        str, typer.Option(help="Messages pending, comma-separated sizes (at least two)")
    ] = "10000,1000000",
    sqlite: SqliteOpt = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """A dispatcher's claim of 1,000 outbox rows with each number of messages PENDING, on
    SQLite (and PostgreSQL if given), next to a plain indexed read of the same rows; each
    size's claim against the smallest's."""

    from drumbeat.bench.dispatch import run
    from drumbeat.errors import InvalidInput

    try:
        sizes = sorted({int(size.replace("_", "")) for size in pending.split(",")})
    except ValueError:
        raise InvalidInput(f"--pending {pending!r}: comma-separated whole numbers") from None
    if len(sizes) < 2 or sizes[0] < 1000:
        raise InvalidInput(f"--pending {pending!r}: at least two sizes, each at least 1,000")
    show("dispatch", on_both_stores(lambda url: run(url, sizes), sqlite, postgres), write)


@app.command("event")
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


@app.command("access")
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


@app.command("api")
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


@app.command("limiter")
def limiter(
    pending: Annotated[int, typer.Option(min=1000, help="Messages pending")] = 10_000,
    sqlite: SqliteOpt = None,
    postgres: PostgresOpt = None,
    redis: Annotated[
        str | None, typer.Option(help="A Redis to count the limit in too (redis://host/db)")
    ] = None,
    write: WriteOpt = None,
) -> None:
    """A rate-limited channel's claim of 1,000 outbox rows, its grant counted in the store
    (and in Redis if given), next to the same claim without a limiter; SQLite (and
    PostgreSQL if given)."""

    from drumbeat.bench.limiter import run

    show("limiter", on_both_stores(lambda url: run(url, pending, redis), sqlite, postgres), write)


@app.command("idle")
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

    show(
        "idle",
        run_all(users, campaign_sizes(campaigns), state(ctx).settings(), sqlite, postgres),
        write,
    )


@app.command("changed")
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


@app.command("capacity")
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

    found = run_all(users, rounds, state(ctx).settings(), sqlite, postgres)
    show("capacity", found, write, NOTES)


def campaign_sizes(text: str) -> list[int]:
    """`--campaigns 10,100,1000` as ascending positive numbers, or InvalidInput."""
    from drumbeat.errors import InvalidInput

    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(n < 1 for n in sizes) or sizes != sorted(set(sizes)):
        raise InvalidInput(
            f"--campaigns {text!r}: give ascending positive numbers, comma-separated (10,100,1000)"
        )
    return sizes


@app.command("lanes")
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
    postgres: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL server (URL of a database on it) where the benchmark may create"
            " and drop a fresh database (also measured when given)"
        ),
    ] = None,
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


@app.command("pipeline")
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


@app.command("workers")
def workers(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=10, help="Messages a round (one per user)")] = 4000,
    processes: Annotated[
        int, typer.Option("--workers", min=2, help="Dispatch workers of the second round")
    ] = 4,
    delay: Annotated[
        float, typer.Option(min=0, help="Milliseconds the local webhook takes to answer")
    ] = 50.0,
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="DRUMBEAT_WEBHOOK_CONCURRENCY of the workers")
    ] = 4,
    sqlite: SqliteOpt = None,
    postgres: PostgresOpt = None,
    write: WriteOpt = None,
) -> None:
    """No central bottleneck: messages delivered a second by one `drumbeat worker --lane
    dispatch` process, then by --workers of them, started by the bench, the scheduler
    publishing; each message a call to a local webhook answering after --delay ms. SQLite
    (and PostgreSQL if given). Needs DRUMBEAT_BROKER_URL, on a vhost no other worker uses."""
    from drumbeat.bench.workers import run
    from drumbeat.cli.worker import needs_broker
    from drumbeat.errors import InvalidInput

    settings = state(ctx).settings()
    if settings.broker_url is None:
        raise InvalidInput(needs_broker("`drumbeat bench workers`"), what="settings")
    broker = settings.broker_url
    figures = on_both_stores(
        lambda url: run(
            url, broker, users=users, workers=processes, delay=delay / 1000,
            concurrency=concurrency, batch_size=settings.batch_size,
            tick=settings.tick_interval,
        ),
        sqlite,
        postgres,
    )  # fmt: skip
    show("workers", figures, write)


@app.command("loader")
def loader(
    users: UsersOpt = 20_000,
    postgres: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL server (URL of a database on it) where the benchmark may create"
            " and drop fresh databases (also measured when given)"
        ),
    ] = None,
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


def on_both_stores(
    measure: "Callable[[str], list[Figure]]", sqlite: Path | None, postgres: str | None
) -> "list[Figure]":
    """`measure(url)` on a fresh SQLite file (in `sqlite`, or a temporary folder), then on
    the PostgreSQL database given, if any: the figures of both."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=sqlite) as folder:
        figures = measure(f"sqlite:///{folder}/bench.db")
    return figures + (measure(postgres) if postgres else [])
