"""The demo's report: messages per campaign and step, exits by reason, conversion against
the control group, and p50 / p99 / max of every timed query and stage."""

from __future__ import annotations

import time
from collections import defaultdict

from rich.console import Console

from drumbeat import metrics
from drumbeat.campaign_stats import split_conversion
from drumbeat.cli.output import table
from drumbeat.client import Drumbeat
from drumbeat.demo.synthetic import RULES_DIR
from drumbeat.store import Store

AUDIENCE_RULES = ("free-engaged.yaml", "lapsed-paid.yaml")


def messages_table(store: Store, ws: int) -> object:
    counts = store.outbox_counts(ws)
    by_step: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for (campaign, step, status), n in counts.items():
        by_step[(campaign, step)][status] = n
    rows = [
        (
            c,
            s,
            sum(st.values()),
            st.get("sent", 0),
            sum(n for k, n in st.items() if k not in ("sent", "pending", "sending")),
        )
        for (c, s), st in sorted(by_step.items())
    ]
    return table(
        "messages per campaign and step", ("campaign", "step", "queued", "sent", "not sent"), rows
    )


def exits_table(store: Store, ws: int) -> object:
    rows = []
    for row in store.campaigns(ws):
        counts = store.member_counts(ws, row.key)
        rows.append(
            (
                row.key,
                sum(counts.values()),
                counts.get("active", 0),
                counts.get("converted", 0),
                counts.get("left_audience", 0),
                counts.get("inactive", 0),
                counts.get("completed", 0),
            )
        )
    return table(
        "members by state",
        ("campaign", "entered", "active", "converted", "left audience", "inactive", "completed"),
        rows,
    )


def control_table(store: Store, ws: int, key: str) -> object | None:
    """Conversion per path of the campaign's first split (the control group's comparison)."""
    row = store.campaign(ws, key)
    split, paths = split_conversion(store, ws, row) if row is not None else (None, {})
    if split is None:
        return None
    rows = [
        (path, p.entered, p.converted, f"{100 * (p.rate or 0):.2f}%") for path, p in paths.items()
    ]
    return table(
        f"{key}: conversion by path of split {split!r}",
        ("path", "entered", "converted", "rate"),
        rows,
    )


def audiences_table(client: Drumbeat) -> object:
    """The demo's example audience rules, counted now by SQL pushdown, with their time."""
    rows = []
    for name in AUDIENCE_RULES:
        began = time.perf_counter()
        count = client.audience_count(RULES_DIR / name)
        rows.append((name, f"{count:,}", f"{(time.perf_counter() - began) * 1000:.1f}"))
    return table("audiences now (SQL pushdown)", ("rule", "users", "ms"), rows)


def timings_table() -> object:
    rows = [
        (
            name,
            s.count,
            s.items,
            f"{s.quantile(0.5) * 1000:.2f}",
            f"{s.quantile(0.99) * 1000:.2f}",
            f"{s.maximum * 1000:.2f}",
            f"{s.total:.2f}",
        )
        for name, s in metrics.summaries().items()
    ]
    columns = ("query or stage", "calls", "rows", "p50", "p99", "max", "total")
    return table("timings (ms; total in s)", columns, rows)


def print_report(console: Console, client: Drumbeat) -> None:
    store, ws = client.store, client.ws
    console.print(audiences_table(client))
    console.print(messages_table(store, ws))
    console.print(exits_table(store, ws))
    control = control_table(store, ws, "trial-to-paid")
    if control is not None:
        console.print(control)
    console.print(timings_table())
