"""`drumbeat demo`: the main job, on a synthetic SaaS user base, in simulated time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from drumbeat.cli.context import state
from drumbeat.cli.output import console, console_err
from drumbeat.errors import InvalidInput

DEMO_DATABASE = "drumbeat-demo.db"


def demo(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=1, help="How many synthetic users")] = 50_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data")] = 7,
    days: Annotated[int, typer.Option(min=1, help="Simulated days")] = 60,
    every: Annotated[float, typer.Option(help="Hours between ticks")] = 6.0,
) -> None:
    """Import a synthetic SaaS user base, run three campaigns for 60 simulated days, report.

    Without --database-url (or DRUMBEAT_DATABASE_URL) the demo starts a fresh SQLite file,
    ./drumbeat-demo.db; a given database must not hold a demo already."""
    from rich.progress import Progress

    from drumbeat.client import Drumbeat
    from drumbeat.demo.report import print_report
    from drumbeat.demo.story import tell
    from drumbeat.pipeline.runner import Runner

    options = state(ctx)
    config = options.settings()
    if options.database_url is None and "DRUMBEAT_DATABASE_URL" not in _environ():
        for suffix in ("", "-wal", "-shm", "-writer"):
            Path(DEMO_DATABASE + suffix).unlink(missing_ok=True)
        config = config.model_copy(
            update={
                "database_url": f"sqlite:///./{DEMO_DATABASE}",
                "outbox_file": "./drumbeat-demo-messages.jsonl",
            }
        )
        Path(config.outbox_file).unlink(missing_ok=True)
    client = Drumbeat(config=config)
    if client.store.campaigns(client.ws):
        raise InvalidInput(
            f"{config.database_url} already holds campaigns in workspace "
            f"{config.workspace!r}: give the demo an empty database"
        )
    runner = Runner(client.store, config, client.clock, workers=config.workers)  # type: ignore[arg-type]
    console().print(
        f"store: {config.database_url}; email goes to {config.smtp_host or config.outbox_file}"
    )
    started = time.perf_counter()
    with Progress(console=console_err(), transient=True) as progress:
        tasks = {
            "users": progress.add_task("users", total=users),
            "events": progress.add_task("events", total=None),
            "days": progress.add_task("simulated days", total=days),
        }
        story = tell(
            client,
            runner,
            users=users,
            seed=seed,
            days=days,
            every=every * 3600,
            progress=lambda kind, n: progress.advance(tasks[kind], n),
        )
    took = time.perf_counter() - started
    console().print(
        f"{users:,} users, {story.events:,} past events, {story.activity:,} events "
        f"during {days} simulated days ({len(story.ticks)} ticks): {took:.1f} s"
    )
    print_report(console(), client)
    runner.close()
    client.close()


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)
