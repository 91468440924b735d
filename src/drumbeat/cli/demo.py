"""`drumbeat demo`: the main job, on a synthetic SaaS user base."""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from drumbeat.cli.context import state
from drumbeat.cli.output import console, console_err, table
from drumbeat.client import Drumbeat
from drumbeat.demo.data import DEMO_NOW, load_demo_data

DEMO_RULES = ("free-engaged.yaml", "lapsed-paid.yaml")


def rule_path(name: str) -> Path:
    return Path(str(files("drumbeat.demo") / "rules" / name))


def demo(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=1, help="How many synthetic users")] = 50_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data")] = 7,
) -> None:
    """Generate a synthetic SaaS user base, import it, and preview two example audiences."""
    config = state(ctx).settings()
    client = Drumbeat(config=config, clock=lambda: DEMO_NOW)
    console.print(f"store: {config.database_url}  workspace: {config.workspace}")
    start = time.perf_counter()
    with Progress(console=console_err, transient=True) as progress:
        tasks = {
            "users": progress.add_task("users", total=users),
            "events": progress.add_task("events", total=None),
        }
        _, events = load_demo_data(
            client, users, seed, progress=lambda kind, n: progress.advance(tasks[kind], n)
        )
    took = time.perf_counter() - start
    console.print(
        f"imported {users:,} users and {events:,} events in {took:.1f} s "
        f"({users / took:,.0f} users/s with their events)"
    )
    rows = []
    for name in DEMO_RULES:
        begin = time.perf_counter()
        count = client.audience_count(rule_path(name))
        rows.append((name, f"{count:,}", f"{(time.perf_counter() - begin) * 1000:.1f} ms"))
    console.print(table("audiences (SQL pushdown)", ("rule", "users", "count took"), rows))
    client.close()
