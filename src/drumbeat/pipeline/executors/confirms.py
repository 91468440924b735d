"""Publishing rounds of task messages that RabbitMQ confirms together.

Celery's publisher confirms (`confirm_publish`) wait for each message's confirm before the
next publish: a round trip a message, with a quorum queue's log write behind each (about a
millisecond here), so a scheduler publishing a thousand batches spent a second waiting.
Celery has no batch confirm (celery/celery#9887), so this publishes the round on a channel
in confirm mode and waits once, for every message's confirm. Same guarantee: `send`
returns only when RabbitMQ holds every message of the round.

The connection and its channel are kept from one round to the next (a scheduler publishes a
round for each lane at every pass): opening them took 3-8 ms a round, a tenth of a
millisecond a batch in a round of 40 (`drumbeat bench pipeline`). A round that fails on a
kept connection (the broker restarted or closed it since) is published once more at once on
a new one, as a round on a new connection would have been.

A kept connection can also die without a word: nothing is refused, the confirms just never
come. py-amqp's TCP_USER_TIMEOUT (1 s, on Linux) ends one whose packets go unacknowledged;
not one whose peer acknowledges and answers nothing (a TCP proxy or load balancer whose
RabbitMQ is gone, a hung broker), nor, between rounds, an idle one (TCP keepalive: after a
minute). So the connection negotiates AMQP heartbeats (`DRUMBEAT_BROKER_HEARTBEAT`) and
keeps them, as RabbitMQ's own clients do: py-amqp's `heartbeat_tick` sends ours when due
and gives the connection up once RabbitMQ sent nothing for two heartbeat timeouts. It runs
during a round's wait for its confirms, so a round on a dead connection goes out again on a
new one then, not after CONFIRM_TIMEOUT; and between rounds, on a thread of the
publisher's that first reads what RabbitMQ sent meanwhile (py-amqp counts only what was
read: kombu#894): an idle connection stays open on both ends (and in a NAT's table), and a
dead one is dropped before a round is published on it. RabbitMQ closes its end of a dead
one as soon, from the heartbeats it misses (without them it kept it).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson

from drumbeat.errors import DrumbeatError

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 30.0  # seconds to wait for a round's confirms
PERSISTENT = 2  # AMQP's delivery mode: kept on disk (a quorum queue keeps every message so)
# seconds between heartbeat checks, in a round's wait and between rounds: py-amqp asks for
# about one a second, and below half a heartbeat timeout ours go out in time
HEARTBEAT_CHECK_EVERY = 0.5
FRAME_WAIT = 1.0  # seconds the rest of a frame RabbitMQ began sending is waited for
# seconds a close waits for each of RabbitMQ's answers (the channel's, the connection's):
# it answers at once if it is there
CLOSE_WAIT = 2.0


class NotConfirmed(DrumbeatError, RuntimeError):
    """RabbitMQ refused a message of the round (nack), or did not confirm it in time."""


class ConfirmedPublisher:
    """Rounds of `app`'s task messages on a connection of its own, until `close`; its
    heartbeat timeout is `heartbeat` seconds (RabbitMQ's, if that is shorter)."""

    def __init__(self, app: Celery, *, heartbeat: int) -> None:
        self.app = app
        self.heartbeat = heartbeat
        self._lock = threading.Lock()  # a connection is one thread's at a time
        self._conn: Any = None  # kombu's
        self._amqp: Any = None  # py-amqp's under it: kombu's would connect again once lost
        self._producer: Any = None
        self._dropped = threading.Event()  # the connection's: its heartbeats thread stops
        self._published = 0  # on the channel: its next message's delivery tag is one more
        self._unconfirmed: set[int] = set()
        self._lost: tuple[type[BaseException], ...] = ()  # what a lost connection raises

    def send(
        self, task: str, messages: list[list[Any]], *, exchange: str, routing_key: str
    ) -> None:
        """Publish `task` through `exchange` with `routing_key` once for each args in
        `messages`, and wait until RabbitMQ confirmed them all. Raises NotConfirmed (or a
        broker error) having maybe published some: the caller publishes the round again, and
        a batch published twice is worked once.

        Each message is Celery's own (`as_task_v2`, what `send_task` sends: the same body
        and headers), built once a round and given each its task id and args, published by
        kombu's producer without `send_task`'s routing and signals."""
        if not messages:
            return
        with self._lock:
            kept = self._conn is not None
            try:
                self._round(task, messages, exchange, routing_key)
            except Exception as exc:
                lost = isinstance(exc, self._lost)
                # its delivery tags no longer known: a new channel next time
                self._drop(graceful=not lost)
                if not (kept and lost):
                    raise
                self._round(task, messages, exchange, routing_key)

    def open(self) -> None:
        """Connect now, not at the first round."""
        with self._lock:
            self._open()

    def close(self) -> None:
        with self._lock:
            self._drop(graceful=True)

    def _round(self, task: str, messages: list[list[Any]], exchange: str, routing_key: str) -> None:
        from kombu.utils.uuid import uuid

        producer = self._open()
        first = self._published + 1
        self._published += len(messages)
        self._unconfirmed = set(range(first, self._published + 1))
        model = self.app.amqp.as_task_v2("", task, args=[])
        _, kwargs, embed = model.body
        for args in messages:
            task_id = uuid()
            producer.publish(
                orjson.dumps((args, kwargs, embed)),
                exchange=exchange,
                routing_key=routing_key,
                headers=model.headers | {"id": task_id, "root_id": task_id, "argsrepr": str(args)},
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=PERSISTENT,
                retry=False,
                **(model.properties | {"correlation_id": task_id}),
            )
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotConfirmed(f"{len(self._unconfirmed)} messages left unconfirmed")
            with contextlib.suppress(socket.timeout):
                self._amqp.drain_events(timeout=min(remaining, HEARTBEAT_CHECK_EVERY))
            self._amqp.heartbeat_tick()  # ConnectionForced: RabbitMQ went silent

    def _open(self) -> Any:
        if self._producer is None:
            from kombu.messaging import Producer

            conn = self.app.connection_for_write(
                heartbeat=self.heartbeat, transport_options={"confirm_publish": False}
            )
            self._conn = conn
            self._lost = (OSError, *conn.connection_errors, *conn.channel_errors)
            channel = conn.default_channel
            self._amqp = conn.connection
            channel.events["basic_ack"].add(self._ack)
            channel.events["basic_nack"].add(self._nack)
            channel.confirm_select()
            self._producer = Producer(channel)
            self._published = 0
            self._dropped = threading.Event()
            threading.Thread(
                target=self._keep_heartbeats,
                args=(self._dropped,),
                name="drumbeat-broker-heartbeats",
                daemon=True,
            ).start()
        return self._producer

    def _keep_heartbeats(self, dropped: threading.Event) -> None:
        """Between rounds, until the connection is dropped: read what RabbitMQ sent, send
        our heartbeat when due, and drop the connection once RabbitMQ went silent (the next
        round opens a new one)."""
        while not dropped.wait(HEARTBEAT_CHECK_EVERY):
            with self._lock:
                if dropped.is_set():  # while this waited for a round
                    return
                try:
                    self._read_arrived()
                    self._amqp.heartbeat_tick()
                except Exception as exc:  # whatever it was, the connection is not to be trusted
                    log.warning("the connection publishing to RabbitMQ is dropped: %r", exc)
                    self._drop(graceful=False)

    def _read_arrived(self) -> None:
        """Read the frames RabbitMQ sent since the last read (its heartbeats, a close), not
        waiting for more."""
        while select.select([self._amqp.sock], [], [], 0)[0]:
            self._amqp.blocking_read(timeout=FRAME_WAIT)

    def _drop(self, *, graceful: bool) -> None:
        """Forget the connection; closed with RabbitMQ if `graceful`, else only on this side
        (a close waits for RabbitMQ's answer: not for one that is gone)."""
        conn, amqp = self._conn, self._amqp
        self._conn = self._amqp = self._producer = None
        self._dropped.set()
        if conn is None:
            return
        if graceful and amqp is not None and amqp.connected:
            amqp.sock.settimeout(CLOSE_WAIT)
            conn.close()
        else:
            conn.collect()

    def _ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        else:
            self._unconfirmed.discard(tag)

    def _nack(self, tag: int, multiple: bool) -> None:
        raise NotConfirmed(f"RabbitMQ refused message {tag} of the round (nack)")
