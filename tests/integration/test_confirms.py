"""A scheduler's rounds of messages (`pipeline/executors/confirms.py`), on RabbitMQ: each
message is Celery's own task message, and a round on the connection kept from the last
one, closed by the broker since, is published on a new one at once."""

from __future__ import annotations

import subprocess
import time

import orjson

from drumbeat.pipeline.executors.celery_app import (
    BATCH_TASK,
    EXCHANGE,
    celery_app,
    declare,
    queue_name,
    queues,
)
from drumbeat.pipeline.executors.confirms import ConfirmedPublisher
from drumbeat.pipeline.planner import DEFAULT_LANE


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)
    return done.stdout.decode()


def connection_state(vhost: str, port: int) -> str | None:
    """The state of the connection from `port` on the broker (None: it has none)."""
    listed = rabbitmqctl("list_connections", "--vhost", vhost, "peer_port", "state", "--quiet")
    states = dict(line.split("\t") for line in listed.splitlines() if "\t" in line)
    return states.get(str(port))


def test_a_round_on_a_connection_the_broker_closed_goes_out_on_a_new_one(
    broker_url: str, rabbit_vhost: str
) -> None:
    app = celery_app(broker_url)
    declare(app)
    publisher = ConfirmedPublisher(app)
    route = {"exchange": EXCHANGE, "routing_key": queue_name(DEFAULT_LANE)}
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
        queue = next(q for q in queues() if q.name == queue_name(DEFAULT_LANE))
        with app.connection_for_write() as conn:
            inbox = conn.SimpleQueue(queue)
            taken = [inbox.get(timeout=10) for _ in range(3)]
            for message in taken:
                message.ack()
            inbox.close()
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
