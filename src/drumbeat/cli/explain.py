"""`drumbeat explain`: the pipeline as configured and as it runs (drumbeat.explain)."""

from typing import Annotated, Any

import typer

from drumbeat.choices import ReportFormat
from drumbeat.cli.context import client
from drumbeat.cli.output import console, table, when


def explain(
    ctx: typer.Context,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format")] = (
        ReportFormat.TABLE
    ),
) -> None:
    """Store, cache, executor, lanes and their depth, channels and their rate limits, active
    campaigns, logs and timings: what `drumbeat run` would work with, and its live state."""
    from drumbeat.explain import explain as read

    found = read(client(ctx))
    if fmt == ReportFormat.JSON:
        import orjson

        console().file.write(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console().print(table(None, ("part", "as configured and running"), _parts(found)))
    lanes = [
        (
            lane["lane"],
            lane["pending"],
            lane["running"],
            "none" if (age := lane["oldest_waiting_seconds"]) is None else f"{age:,.0f} s",
        )
        for lane in found["lanes"]
    ]
    console().print(table("lanes", ("lane", "pending", "running", "oldest waiting"), lanes))
    channels = [
        (
            c["channel"],
            c["sends_with"],
            "none" if c["rate_limit"] is None else f"{c['rate_limit']:g}/s",
        )
        for c in found["channels"]
    ]
    console().print(table("channels", ("channel", "sends with", "rate limit"), channels))


def _parts(found: dict[str, Any]) -> list[tuple[str, str]]:
    store, executor, clock = found["store"], found["executor"], found["clock"]
    if executor["kind"] == "celery":
        worked = f"celery, broker {executor['broker']}"
    else:
        worked = f"{executor['kind']}, {executor['workers']} worker(s)"
        if "threads" in executor:
            worked += f", {executor['threads']} thread(s)"
    return [
        ("store", f"{store['kind']} {store['url']} (schema {store['schema']})"),
        ("cache", found["cache"]["kind"]),
        ("executor", worked),
        ("clock", f"{'virtual' if clock['virtual'] else 'real'}, {when(clock['now'])}"),
        ("workspace", found["workspace"]),
        ("active campaigns", str(found["active_campaigns"])),
        ("batch size", f"{found['batch_size']:,} users"),
        ("tick", f"every {found['tick_interval_seconds']:g} s"),
        ("logs", f"{found['logs']['format']}, {found['logs']['level']} and above"),
        (
            "timings",
            f"written every {found['timings']['flush_seconds']:g} s, kept "
            f"{found['timings']['keep_days']:g} days",
        ),
    ]
