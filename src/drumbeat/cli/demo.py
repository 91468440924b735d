"""`drumbeat demo`: the main job, on a synthetic SaaS user base, in simulated time."""

import time
from pathlib import Path
from typing import Annotated

import typer

from drumbeat.cli.context import state
from drumbeat.cli.output import console, console_err

DEMO_DATABASE = "drumbeat-demo.db"


def demo(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=1, help="How many synthetic users")] = 50_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data")] = 7,
    days: Annotated[int, typer.Option(min=1, help="Simulated days")] = 60,
    every: Annotated[float, typer.Option(help="Hours between ticks")] = 6.0,
    database_url: Annotated[
        str | None,
        typer.Option(help="A new store for the demo [default: a fresh ./drumbeat-demo.db]"),
    ] = None,
) -> None:
    """Import a synthetic SaaS user base, run three campaigns for 60 simulated days, report.

    The demo starts a fresh SQLite file, ./drumbeat-demo.db, whatever DRUMBEAT_DATABASE_URL
    says. Given --database-url (here or before the command), it takes that store only if it
    is new or a demo's that holds no campaigns yet: it refuses one with users it did not make."""
    from rich.progress import Progress

    from drumbeat.client import Drumbeat
    from drumbeat.demo.claim import mark_demo_store, refuse_unless_demo_store
    from drumbeat.demo.report import print_report
    from drumbeat.demo.story import tell
    from drumbeat.pipeline.runner import Runner

    options = state(ctx)
    url = database_url or options.database_url
    config = options.settings()
    if url is None:
        for suffix in ("", "-wal", "-shm", "-writer"):
            Path(DEMO_DATABASE + suffix).unlink(missing_ok=True)
        config = config.model_copy(
            update={
                "database_url": f"sqlite:///./{DEMO_DATABASE}",
                "outbox_file": "./drumbeat-demo-messages.jsonl",
            }
        )
        Path(config.outbox_file).unlink(missing_ok=True)
    else:
        refuse_unless_demo_store(url)
        config = config.model_copy(update={"database_url": url})
    client = Drumbeat(config=config)
    mark_demo_store(client.store)
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
