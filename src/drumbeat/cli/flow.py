"""`drumbeat advance|run|clock|cap`: move time and run the flow."""

from __future__ import annotations

from typing import Annotated

import typer

from drumbeat.cli.context import state
from drumbeat.cli.output import console
from drumbeat.errors import InvalidInput
from drumbeat.model.attributes import TypeMismatch, format_timestamp, parse_timestamp
from drumbeat.model.durations import InvalidDuration, format_duration, parse_duration


def _time(value: str, option: str) -> float:
    try:
        return parse_timestamp(value)
    except TypeMismatch as exc:
        raise InvalidInput(f"{option}: {exc}") from None


def _duration(value: str, option: str) -> float:
    try:
        seconds = parse_duration(value)
    except InvalidDuration as exc:
        raise InvalidInput(f"{option}: {exc}") from None
    if seconds <= 0:
        raise InvalidInput(f"{option}: must be longer than zero")
    return seconds


def _runner(ctx: typer.Context, workers: int | None = None):  # type: ignore[no-untyped-def]
    from drumbeat.pipeline.clock import StoreClock
    from drumbeat.pipeline.runner import Runner

    client = state(ctx).client()
    config = client.config
    return Runner(client.store, config, StoreClock(client.store), workers=workers or 1)


def advance(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="ISO-8601 time to move the clock to")],
    every: Annotated[str, typer.Option(help="Tick interval, e.g. 1h or 15m")] = "1h",
    workers: Annotated[int, typer.Option(help="Worker processes (1: in this process)")] = 1,
) -> None:
    """Move the virtual clock to --to, running every tick and dispatch due on the way."""
    target, step = _time(to, "--to"), _duration(every, "--every")
    runner = _runner(ctx, workers)
    start = runner.clock()
    if runner.clock.virtual and target < start:
        raise InvalidInput(f"--to: {to} is before the virtual clock ({format_timestamp(start)})")
    entered = queued = 0
    sent: dict[str, int] = {}
    for report in runner.advance(target, step):
        entered += report.entered
        queued += report.queued
        for status, n in report.sent.items():
            sent[status] = sent.get(status, 0) + n
    runner.close()
    console.print(
        f"clock at {format_timestamp(target)}: {entered:,} entered, "
        f"{queued:,} messages queued, sent {sent or 'nothing'}"
    )


def run(
    ctx: typer.Context,
    workers: Annotated[int | None, typer.Option(help="Worker processes (1: this process)")] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between ticks")] = None,
) -> None:
    """Tick on the real clock until stopped: SIGTERM or Ctrl-C stops after the current tick."""
    from drumbeat.cli.signals import StopOnSignal

    settings = state(ctx).settings()
    runner = _runner(ctx, workers or settings.workers)
    if runner.clock.virtual:
        runner.close()
        raise InvalidInput("this store runs on a virtual clock: `drumbeat clock --real` first")
    stop = StopOnSignal()
    console.print(f"running; a tick every {interval or settings.tick_interval:g} s")
    try:
        runner.run(interval or settings.tick_interval, stop=stop)
    finally:
        runner.close()
        stop.close()
    console.print("stopped")


def clock(
    ctx: typer.Context,
    set_to: Annotated[str | None, typer.Option("--set", help="Set the virtual clock")] = None,
    real: Annotated[bool, typer.Option("--real", help="Back to the real clock")] = False,
) -> None:
    """Show the clock; --set starts a virtual one, --real returns to real time."""
    from drumbeat.pipeline.clock import StoreClock

    current = StoreClock(state(ctx).client().store)
    if set_to is not None:
        current.set(_time(set_to, "--set"))
    elif real:
        current.reset()
    kind = "virtual" if current.virtual else "real"
    console.print(f"{kind} clock: {format_timestamp(current())}")


def cap(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Argument(help="At most this many messages …")] = None,
    per: Annotated[str, typer.Option(help="… per user per this long")] = "7d",
    off: Annotated[bool, typer.Option("--off", help="Remove the cap")] = False,
) -> None:
    """The workspace's frequency cap across all campaigns (over the cap waits, never drops)."""
    from drumbeat.pipeline.programs import CAP_SETTING

    client = state(ctx).client()
    if off:
        client.store.set_setting(client.ws, CAP_SETTING, None)
    elif limit is not None:
        if limit < 1:
            raise InvalidInput("the cap's limit must be at least 1")
        client.store.set_setting(
            client.ws, CAP_SETTING, {"limit": limit, "per": _duration(per, "--per")}
        )
    value = client.store.get_setting(client.ws, CAP_SETTING)
    shown = f"{value['limit']} per user per {format_duration(value['per'])}" if value else "none"
    console.print(f"frequency cap: {shown}")
