"""A scheduler's rounds of messages (`pipeline/executors/confirms.py`), on RabbitMQ: each
message is Celery's own task message, and a round on the connection kept from the last
one, closed by the broker since, is published on a new one at once. A kept connection keeps
its heartbeats between rounds; one that went silent (a proxy between it and RabbitMQ stops
forwarding, closing nothing) is given up on both ends, a round on it goes out on a new one
long before CONFIRM_TIMEOUT, and a close does not wait for it."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from drumbeat.config import BROKER_HEARTBEAT
from drumbeat.pipeline.executors.celery_app import (
    BATCH_TASK,
    EXCHANGE,
    celery_app,
    declare,
    queue_name,
    queues,
)
from drumbeat.pipeline.executors.confirms import CONFIRM_TIMEOUT, ConfirmedPublisher
from drumbeat.pipeline.planner import DEFAULT_LANE
from tests.e2e.running import wait_for
from tests.silent_proxy import SilentProxy

ROUTE = {"exchange": EXCHANGE, "routing_key": queue_name(DEFAULT_LANE)}
HEARTBEAT = 1  # seconds: a silent connection is given up after 2


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)
    return done.stdout.decode()


def connection_state(vhost: str, port: int) -> str | None:
    """The state of the connection from `port` on the broker (None: it has none)."""
    listed = rabbitmqctl("list_connections", "--vhost", vhost, "peer_port", "state", "--quiet")
    states = dict(line.split("\t") for line in listed.splitlines() if "\t" in line)
    return states.get(str(port))


def take(broker_url: str, count: int) -> list[Any]:
    """`count` messages from the default lane's queue, acked."""
    queue = next(q for q in queues() if q.name == queue_name(DEFAULT_LANE))
    app = celery_app(broker_url)
    with app.connection_for_write() as conn:
        inbox = conn.SimpleQueue(queue)
        taken = [inbox.get(timeout=10) for _ in range(count)]
        for message in taken:
            message.ack()
        inbox.close()
    app.close()
    return taken


def test_a_round_on_a_connection_the_broker_closed_goes_out_on_a_new_one(
    broker_url: str, rabbit_vhost: str
) -> None:
    app = celery_app(broker_url)
    declare(app)
    publisher = ConfirmedPublisher(app, heartbeat=BROKER_HEARTBEAT)
    route = ROUTE
    try:
        publisher.send(BATCH_TASK, [[1]], **route)
        port = publisher._conn.connection.sock.getsockname()[1]  # the kept connection's
        rabbitmqctl("close_all_connections", "--vhost", rabbit_vhost, "a broker restarting")
        give_up = time.monotonic() + 60
        while connection_state(rabbit_vhost, port) == "running":
            # the close is the broker's to do (rabbitmqctl returns having asked); other tests'
            # processes on this session's vhost may connect again meanwhile: ours counts
            assert time.monotonic() < give_up, "the broker did not close the connection"
        publisher.send(BATCH_TASK, [[2], [3]], **route)  # raises without a new connection
        taken = take(broker_url, 3)
    finally:
        publisher.close()
        app.close()
    bodies = [orjson.loads(message.body) for message in taken]
    assert [body[0] for body in bodies] == [[1], [2], [3]]
    assert all(body[1:] == [{}, app.amqp.as_task_v2("", BATCH_TASK).body[2]] for body in bodies)
    headers = [message.headers for message in taken]
    assert {h["task"] for h in headers} == {BATCH_TASK}
    assert len({h["id"] for h in headers}) == 3  # a task id each
    assert [h["argsrepr"] for h in headers] == ["[1]", "[2]", "[3]"]
    assert all(m.properties["correlation_id"] == m.headers["id"] for m in taken)


def test_a_kept_connection_idle_for_heartbeats_stays_open(broker_url: str, rabbit_vhost: str):
    """Between rounds the publisher reads RabbitMQ's heartbeats and sends its own: after
    several heartbeat timeouts without a round, neither end gave the connection up."""
    app = celery_app(broker_url)
    declare(app)
    publisher = ConfirmedPublisher(app, heartbeat=HEARTBEAT)
    try:
        publisher.send(BATCH_TASK, [[1]], **ROUTE)
        kept = publisher._conn
        amqp = kept.connection
        port = amqp.sock.getsockname()[1]
        frames = amqp.bytes_recv
        # RabbitMQ sends a heartbeat every half timeout: 6 of them are 3 timeouts, past
        # which RabbitMQ closes a connection that sent nothing
        wait_for(lambda: amqp.bytes_recv >= frames + 6, "RabbitMQ's heartbeats read", deadline=30)
        assert publisher._conn is kept
        assert connection_state(rabbit_vhost, port) == "running"
        publisher.send(BATCH_TASK, [[2]], **ROUTE)
        assert publisher._conn is kept
        taken = take(broker_url, 2)
    finally:
        publisher.close()
        app.close()
    assert [orjson.loads(m.body)[0] for m in taken] == [[1], [2]]


def send_in_time(publisher: ConfirmedPublisher, messages: list[list[Any]]) -> None:
    """`publisher.send(messages)`, which must return (not raise) well before the round's
    wait for confirms (CONFIRM_TIMEOUT) would have given up."""
    failed: list[BaseException] = []

    def send() -> None:
        try:
            publisher.send(BATCH_TASK, messages, **ROUTE)
        except Exception as exc:
            failed.append(exc)

    sending = threading.Thread(target=send, daemon=True)
    sending.start()
    sending.join(CONFIRM_TIMEOUT / 3)
    assert not sending.is_alive(), "the round waited on a silent connection"
    assert failed == []


def waiting(broker_url: str) -> int:
    """Messages in the default lane's queue."""
    queue = next(q for q in queues() if q.name == queue_name(DEFAULT_LANE))
    app = celery_app(broker_url)
    with app.connection_for_write() as conn:
        declared = queue.bind(conn.default_channel).queue_declare(passive=True)
    app.close()
    return int(declared.message_count)


@contextmanager
def behind_a_proxy(
    broker_url: str, heartbeat: int
) -> Iterator[tuple[SilentProxy, ConfirmedPublisher]]:
    """A publisher whose connections to RabbitMQ go through a proxy that can go silent. At
    the end the proxy is closed first: a round or a close still waiting (the test failed)
    hears of it and lets go."""
    proxy = SilentProxy(("127.0.0.1", 5672))
    app = celery_app(broker_url.replace(":5672/", f":{proxy.port}/"))
    declare(app)
    publisher = ConfirmedPublisher(app, heartbeat=heartbeat)
    try:
        yield proxy, publisher
    finally:
        proxy.close()
        publisher.close()
        app.close()


def test_a_round_on_a_connection_gone_silent_goes_out_on_a_new_one(broker_url: str) -> None:
    """RabbitMQ's heartbeats stop coming: the round is published again on a new connection
    long before its wait for confirms would have given up, and only there (what went into
    the silent one never reached RabbitMQ)."""
    with behind_a_proxy(broker_url, HEARTBEAT) as (proxy, publisher):
        publisher.send(BATCH_TASK, [[1]], **ROUTE)
        kept = publisher._conn
        proxy.go_silent()
        send_in_time(publisher, [[2], [3]])
        assert publisher._conn is not kept
    assert waiting(broker_url) == 3
    assert [orjson.loads(m.body)[0] for m in take(broker_url, 3)] == [[1], [2], [3]]


def test_an_idle_connection_gone_silent_is_given_up_on_both_ends(
    broker_url: str, rabbit_vhost: str
) -> None:
    """Between rounds: the publisher drops the connection once RabbitMQ's heartbeats stop
    (the next round opens a new one, nothing published into the dead one), and RabbitMQ
    closes its end once the publisher's stop."""
    with behind_a_proxy(broker_url, HEARTBEAT) as (proxy, publisher):
        publisher.send(BATCH_TASK, [[1]], **ROUTE)
        link = proxy.links[-1]  # the publisher's connection: RabbitMQ sees the proxy's port
        broker_side = link.upstream.getsockname()[1]
        assert connection_state(rabbit_vhost, broker_side) == "running"
        proxy.go_silent()
        wait_for(lambda: publisher._conn is None, "the publisher's drop", deadline=10)
        wait_for(
            lambda: connection_state(rabbit_vhost, broker_side) is None,
            "RabbitMQ's close of its end",
            deadline=CONFIRM_TIMEOUT,
        )
        publisher.send(BATCH_TASK, [[2]], **ROUTE)
        assert proxy.links[-1] is not link
    assert [orjson.loads(m.body)[0] for m in take(broker_url, 2)] == [[1], [2]]


def test_closing_a_connection_gone_silent_does_not_wait_for_it(broker_url: str) -> None:
    """A close waits for RabbitMQ's answers, a little: not for ever."""
    with behind_a_proxy(broker_url, BROKER_HEARTBEAT) as (proxy, publisher):
        publisher.open()
        proxy.go_silent()
        closing = threading.Thread(target=publisher.close, daemon=True)
        closing.start()
        closing.join(CONFIRM_TIMEOUT / 3)
        assert not closing.is_alive(), "the close waited for a silent connection"
