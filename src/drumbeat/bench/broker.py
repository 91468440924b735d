"""A benchmark leaves the broker as it found it. The workers it starts (and its publisher)
declare the distributed shape's queues and exchanges on DRUMBEAT_BROKER_URL's vhost, and
they are durable: what was not there before the benchmark is deleted at its end; what was
there (a deployment's queues, their messages) is left alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drumbeat.pipeline.executors.celery_app import celery_app, queues

WORKER_EXCHANGES = ("celery.pidbox",)  # the workers' remote control declares it, and keeps it


@contextmanager
def broker_left_as_found(broker_url: str) -> Iterator[None]:
    """Delete, at the end of the block, the shape's queues and exchanges that the block
    declared on the broker at `broker_url`."""
    app = celery_app(broker_url)
    try:
        with app.connection_for_write() as conn:
            found = existing(conn)
        yield
    finally:
        with app.connection_for_write() as conn, conn.channel() as channel:
            for kind, name in existing(conn) - found:
                if kind == "queue":
                    channel.queue_delete(name)
                else:  # its bindings go with it
                    channel.exchange_delete(name)
        app.close()


def existing(conn: Any) -> set[tuple[str, str]]:
    """The shape's queues and exchanges on the broker: ("queue" or "exchange", name)."""
    shape = queues()
    exchanges = {q.exchange.name for q in shape} | set(WORKER_EXCHANGES)
    wanted = {("queue", q.name) for q in shape} | {("exchange", name) for name in exchanges}
    return {(kind, name) for kind, name in wanted if exists(conn, kind, name)}


def exists(conn: Any, kind: str, name: str) -> bool:
    """Whether a passive declaration finds it: RabbitMQ closes the channel that asked for
    one that does not exist, so each is asked on a channel of its own."""
    with conn.channel() as channel:
        try:
            if kind == "queue":
                channel.queue_declare(name, passive=True)
            else:
                channel.exchange_declare(name, "direct", passive=True)
        except conn.channel_errors:
            return False
    return True
