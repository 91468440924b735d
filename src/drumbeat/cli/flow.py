"""`drumbeat advance|run|clock|cap`: move time and run the flow."""

import math
from typing import Annotated

import typer

from drumbeat.cli.context import client, state
from drumbeat.cli.options import MetricsHost, MetricsPort
from drumbeat.cli.output import console, console_err, counts, when
from drumbeat.errors import InvalidInput

WORKERS_HELP = "Worker processes (1: in this process, on DRUMBEAT_WORKER_THREADS threads)"


def _runner(ctx: typer.Context, workers: int | None = None):  # type: ignore[no-untyped-def]
    from drumbeat.pipeline.clock import StoreClock
    from drumbeat.pipeline.runner import Runner

    client = state(ctx).client()
    config = client.config
    return Runner(client.store, config, StoreClock(client.store), workers=workers or 1)


def _scheduler(ctx: typer.Context):  # type: ignore[no-untyped-def]
    from drumbeat.pipeline.clock import StoreClock
    from drumbeat.pipeline.scheduler import Scheduler

    client = state(ctx).client()
    return Scheduler(client.store, client.config, StoreClock(client.store))


def advance(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="ISO-8601 time to move the clock to")],
    every: Annotated[str, typer.Option(help="Tick interval, e.g. 1h or 15m")] = "1h",
    workers: Annotated[int, typer.Option(min=1, help=WORKERS_HELP)] = 1,
    send: Annotated[
        bool,
        typer.Option(
            "--send/--no-send",
            help="--no-send: work the ticks but send nothing; their messages stay queued "
            "(`drumbeat outbox`) for a later advance or run to send",
        ),
    ] = True,
) -> None:
    """Move the virtual clock to --to, running every tick and dispatch due on the way."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from drumbeat.inputs import interval, timestamp

    db = client(ctx)
    state(ctx).record_timings()
    target, step = timestamp(to, "--to"), interval(every, "--every")
    start = db.clock()
    columns = (
        TextColumn("ticks"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeRemainingColumn(),
    )
    # on a terminal only (Rich draws nothing when stderr is captured), and gone when done
    with Progress(*columns, console=console_err(), transient=True) as progress:
        ticks = progress.add_task("", total=max(1, math.ceil((target - start) / step)))

        def on_tick(_: float, end: float) -> None:
            progress.update(ticks, advance=1, description=when(end) or "")

        done = db.advance(target, step, workers=workers, on_tick=on_tick, send=send)
    console().print(
        f"clock at {when(done.to)} after {done.ticks:,} ticks: {done.entered:,} entered, "
        f"{done.queued:,} messages queued; sent: "
        f"{counts(done.sent, 'nothing') if send else 'nothing (--no-send)'}"
    )


def run(
    ctx: typer.Context,
    workers: Annotated[int | None, typer.Option(help=WORKERS_HELP)] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between ticks")] = None,
    scheduler_only: Annotated[
        bool,
        typer.Option(
            "--scheduler-only",
            help="Plan and publish to the broker only: `drumbeat worker` processes do the "
            "batches and the sending (needs DRUMBEAT_BROKER_URL)",
        ),
    ] = False,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Tick on the real clock until stopped: SIGTERM or Ctrl-C stops after the current tick."""
    settings = state(ctx).settings()
    if scheduler_only and settings.broker_url is None:
        from drumbeat.cli.worker import needs_broker

        raise InvalidInput(needs_broker("--scheduler-only"), what="settings")
    server = None
    if metrics_port is not None:  # before anything is timed, and before the workers start
        from drumbeat.metrics_server import serve_metrics

        server = serve_metrics(metrics_port, metrics_host)
    try:
        _run(
            ctx,
            workers or settings.workers,
            interval or settings.tick_interval,
            scheduler_only=scheduler_only,
        )
    finally:
        if server is not None:
            server.close()


def _run(ctx: typer.Context, workers: int, interval: float, *, scheduler_only: bool) -> None:
    from drumbeat.cli.signals import StopOnSignal

    runner = _scheduler(ctx) if scheduler_only else _runner(ctx, workers)
    state(ctx).record_timings()
    stop = StopOnSignal()
    console().print(f"running; a tick every {interval:g} s")
    try:
        runner.run(interval, stop=stop)
    finally:
        runner.close()
        stop.close()
    console().print("stopped")


def clock(
    ctx: typer.Context,
    set_to: Annotated[str | None, typer.Option("--set", help="Set the virtual clock")] = None,
    real: Annotated[bool, typer.Option("--real", help="Back to the real clock")] = False,
) -> None:
    """Show the clock; --set starts a virtual one, --real returns to real time."""
    from drumbeat.pipeline.clock import StoreClock

    if set_to is None and not real and _show_clock_quickly(ctx):
        return
    current = StoreClock(state(ctx).client().store)
    if set_to is not None:
        from drumbeat.inputs import timestamp

        current.set(timestamp(set_to, "--set"))
    elif real:
        current.reset()
    _show_clock(current.virtual, current())


def _show_clock_quickly(ctx: typer.Context) -> bool:
    """The clock shown through the plain driver (Start-up in docs/cli.md); False when the
    store is not ready for that."""
    import time
    from contextlib import closing

    from drumbeat.pipeline.clock import CLOCK_SETTING, CLOCK_WORKSPACE

    found = state(ctx).readonly()
    if found is None:
        return False
    with closing(found[0]) as store:
        value = store.get_setting(CLOCK_WORKSPACE, CLOCK_SETTING)
    _show_clock(value is not None, time.time() if value is None else float(value))
    return True


def _show_clock(virtual: bool, now: float) -> None:
    console().print(f"{'virtual' if virtual else 'real'} clock: {when(now)}")


def cap(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Argument(help="At most this many messages …")] = None,
    per: Annotated[str, typer.Option(help="… per user per this long")] = "7d",
    off: Annotated[bool, typer.Option("--off", help="Remove the cap")] = False,
) -> None:
    """The workspace's frequency cap across all campaigns (over the cap waits, never drops)."""
    from drumbeat.inputs import interval
    from drumbeat.model.durations import format_duration
    from drumbeat.pipeline.programs import CAP_SETTING

    client = state(ctx).client()
    if off:
        client.store.set_setting(client.ws, CAP_SETTING, None)
    elif limit is not None:
        if limit < 1:
            raise InvalidInput("the cap's limit must be at least 1")
        client.store.set_setting(
            client.ws, CAP_SETTING, {"limit": limit, "per": interval(per, "--per")}
        )
    value = client.store.get_setting(client.ws, CAP_SETTING)
    shown = f"{value['limit']} per user per {format_duration(value['per'])}" if value else "none"
    console().print(f"frequency cap: {shown}")
