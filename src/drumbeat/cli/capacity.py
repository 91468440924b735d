"""`drumbeat capacity`: what a tick costs at a target size, from the timings the store
holds (drumbeat.capacity has the model; docs/cli.md its assumptions)."""

from typing import TYPE_CHECKING, Annotated

import typer

from drumbeat.choices import ReportFormat
from drumbeat.cli.context import state
from drumbeat.cli.output import console, table

if TYPE_CHECKING:
    from drumbeat.capacity import Capacity, Target


def capacity(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=1, help="Users of the workspace at that size")],
    campaigns: Annotated[int, typer.Option(min=1, help="Active campaigns at that size")],
    events_per_day: Annotated[int, typer.Option(min=0, help="Events tracked a day")] = 0,
    since: Annotated[str, typer.Option(help="Timings of how far back, e.g. 15m, 1h")] = "1h",
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Workers per lane (default: as many as keep up with a tick)"),
    ] = None,
    store_qps: Annotated[
        float, typer.Option(min=1, help="Store queries per second the store is stated to take")
    ] = 5000.0,
    cores: Annotated[
        int | None, typer.Option(min=1, help="CPU cores for the workers (default: this machine's)")
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format")] = (
        ReportFormat.TABLE
    ),
) -> None:
    """Workers per lane, store queries per second, tick time and messages per hour at a
    target size, and which resource runs out first: modelled from the measured cost per
    tick, plan, batch, query and message (`drumbeat stats --by stage|query|lane`)."""
    import os
    import time

    from drumbeat.capacity import NoTimings, Target, model
    from drumbeat.errors import InvalidInput
    from drumbeat.inputs import interval
    from drumbeat.stats import read_measured

    seconds = interval(since, "--since")
    config = state(ctx).settings()
    db = state(ctx).client()
    measured = read_measured(
        db.store, db.ws, since=seconds, now=time.time(), workers=config.workers
    )
    target = Target(
        users=users,
        campaigns=campaigns,
        events_per_day=events_per_day,
        batch_size=config.batch_size,
        tick_interval=config.tick_interval,
        workers=workers,
        store_queries_per_second=store_qps,
        cores=cores or os.cpu_count() or 1,
    )
    try:
        figures = model(measured, target)
    except NoTimings:
        raise InvalidInput(
            f"no ticks with batches timed in the store in the last {since}: run some work "
            "first (drumbeat advance or run), then ask again",
            what="--since",
        ) from None
    if fmt == ReportFormat.JSON:
        import orjson

        document = {"target": target.__dict__, **figures.as_json()}
        console().file.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print(target, figures)


def _print(target: "Target", c: "Capacity") -> None:
    lanes = ", ".join(f"{lane} {n}" for lane, n in sorted(c.workers_per_lane.items()))
    events = c.event_queries_per_second
    rows = (
        ("users processed per tick, all campaigns", f"{c.users_per_tick:,.0f}"),
        ("batches per tick", f"{c.batches_per_tick:,.0f}"),
        ("store queries per tick", f"{c.store_queries_per_tick:,.0f}"),
        ("tick time", f"{c.tick_seconds:,.2f} s (every {target.tick_interval:g} s)"),
        ("workers per lane", lanes),
        ("store queries per second", f"{c.store_queries_per_second:,.0f}"),
        ("of which events", "not measured" if events is None else f"{events:,.0f}"),
        ("messages per hour", f"{c.messages_per_hour:,.0f}"),
    )
    title = f"at {target.users:,} users, {target.campaigns:,} campaigns"
    console().print(table(title, ("figure", "value"), rows))
    used = [(name, f"{share:.0%}") for name, share in sorted(c.use.items(), key=lambda i: -i[1])]
    console().print(table(None, ("resource", "used"), used))
    console().print(f"runs out first: {c.runs_out_first}")
