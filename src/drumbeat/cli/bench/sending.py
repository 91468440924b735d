"""Benchmarks of sending: a dispatcher's claim of outbox rows as they pile up (`dispatch`),
what a shared rate limit adds to it (`limiter`), and dispatch workers side by side
(`workers`)."""

from typing import Annotated

import typer

from drumbeat.cli.bench.figures import on_both_stores, show
from drumbeat.cli.bench.options import PostgresOpt, SqliteOpt, WriteOpt
from drumbeat.cli.context import state


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
