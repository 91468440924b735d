"""`drumbeat stats`: the workspace's batches and messages by status, then where the time
goes, from the timings every process wrote into the store (drumbeat.stats)."""

from typing import TYPE_CHECKING, Annotated

import typer

from drumbeat.choices import ReportFormat, StatsBy
from drumbeat.cli.context import state
from drumbeat.cli.output import console, table

if TYPE_CHECKING:
    from drumbeat.stats import Stats
    from drumbeat.store import Store
    from drumbeat.store.readonly import ReadOnlyStore


def stats(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="How far back, e.g. 15m, 1h, 7d")] = "1h",
    by: Annotated[StatsBy, typer.Option(help="Timings of what")] = StatsBy.QUERY,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format")] = (
        ReportFormat.TABLE
    ),
) -> None:
    """Batches and messages by status; per query, stage, campaign or lane: count, p50, p99,
    max and total time; store queries per 1,000 users, users and messages per second, lane
    depths, cache hit rate."""

    from drumbeat.inputs import interval

    seconds = interval(since, "--since")
    found = state(ctx).readonly()
    if found is not None:  # through the plain driver: Start-up in docs/cli.md
        from contextlib import closing

        from drumbeat.pipeline.clock import store_now

        store, ws = found
        with closing(store):
            _report(store, ws, since=seconds, by=by, fmt=fmt, clock=store_now(store))
        return
    db = state(ctx).client()
    _report(db.store, db.ws, since=seconds, by=by, fmt=fmt, clock=db.clock())


def _report(
    store: "Store | ReadOnlyStore",
    ws: int,
    *,
    since: float,
    by: StatsBy,
    fmt: ReportFormat,
    clock: float,
) -> None:
    """The report of the workspace's store, read the full way or the quick one."""
    import time

    from drumbeat.stats import read_stats

    report = read_stats(store, ws, since=since, by=by, now=time.time(), clock=clock)
    batches = dict(store.batch_counts(ws))
    messages: dict[str, int] = {}
    for (_, _, status), n in store.outbox_counts(ws).items():
        messages[status] = messages.get(status, 0) + n
    if fmt == ReportFormat.JSON:
        import orjson

        document = {
            "batches_by_status": batches,
            "messages_by_status": messages,
            **report.as_json(),
        }
        console().file.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    states = sorted(set(batches) | set(messages))
    rows = [(s, batches.get(s, ""), messages.get(s, "")) for s in states]
    console().print(table(None, ("status", "batches", "messages"), rows))
    _print_timings(report)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _rate(value: float | None, form: str = "{:,.1f}") -> str:
    return "n/a" if value is None else form.format(value)


def _print_timings(report: "Stats") -> None:
    rows = [
        (
            name,
            f"{h.count:,}",
            _ms(h.quantile(0.5)),
            _ms(h.quantile(0.99)),
            _ms(h.maximum),
            f"{h.total:,.2f}",
            f"{h.items:,}",
        )
        for name, h in report.names.items()
    ]
    columns = (report.by, "count", "p50 ms", "p99 ms", "max ms", "total s", "rows")
    console().print(table(f"timings by {report.by}, last {report.since:g} s", columns, rows))
    rates = (
        ("users processed", f"{report.users:,}"),
        ("users per second", _rate(report.per_second(report.users))),
        ("messages per second", _rate(report.per_second(report.messages))),
        ("store queries per 1,000 users", _rate(report.queries_per_1000_users)),
        ("cache hit rate", _rate(report.cache_hit_rate, "{:.1%}")),
    )
    console().print(table(None, ("rate", "value"), rates))
    lanes = [
        (lane.name, lane.pending, lane.running, _rate(lane.oldest_waiting, "{:,.0f} s"))
        for lane in report.lanes
    ]
    console().print(table("lanes", ("lane", "pending", "running", "oldest waiting"), lanes))
