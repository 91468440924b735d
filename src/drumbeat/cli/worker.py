"""`drumbeat worker --lane fast|slow|dispatch`: a Celery worker of the distributed shape,
consuming one lane's queue (docs/deploy.md)."""

import os
import socket
from typing import Annotated

import typer

from drumbeat.choices import Lane
from drumbeat.cli.context import state
from drumbeat.cli.options import MetricsHost, MetricsPort
from drumbeat.errors import InvalidInput, Problem


def needs_broker(what: str) -> Problem:
    return Problem("broker_url (DRUMBEAT_BROKER_URL)", f"not set: {what} needs RabbitMQ (amqp://…)")


def worker(
    ctx: typer.Context,
    lane: Annotated[Lane, typer.Option(help="The lane whose queue this worker consumes")],
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="Processes working this lane's tasks at once")
    ] = 1,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Work one lane's batches (or, for dispatch, send) as RabbitMQ hands them out; until
    stopped (SIGTERM: finish the tasks under way, then exit). Needs DRUMBEAT_BROKER_URL."""
    settings = state(ctx).settings()
    if settings.broker_url is None:
        raise InvalidInput(needs_broker("`drumbeat worker`"), what="settings")
    from drumbeat.pipeline.executors.celery_app import celery_app, declare, queue_name

    # the store is checked (and its schema's revision) before any message is taken,
    from drumbeat.store import open_store

    # and what a killed predecessor on this host held is let go of at once
    store = open_store(settings.database_url, migrate=False)
    store.release_orphaned_batches()
    store.release_orphaned_messages()
    store.close()
    if metrics_port is not None:  # before the pool forks: its processes write to its folder
        from drumbeat.metrics_server import serve_metrics

        serve_metrics(metrics_port, metrics_host)
    app = celery_app(settings.broker_url)
    declare(app)
    name = f"drumbeat-{lane.value}-{os.getpid()}@{socket.gethostname()}"
    app.worker_main(
        [
            "worker",
            f"--queues={queue_name(lane.value)}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--hostname={name}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
