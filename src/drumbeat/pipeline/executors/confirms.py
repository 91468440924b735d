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
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import orjson

from drumbeat.errors import DrumbeatError

if TYPE_CHECKING:
    from celery import Celery

CONFIRM_TIMEOUT = 30.0  # seconds to wait for a round's confirms
PERSISTENT = 2  # AMQP's delivery mode: kept on disk (a quorum queue keeps every message so)


class NotConfirmed(DrumbeatError, RuntimeError):
    """RabbitMQ refused a message of the round (nack), or did not confirm it in time."""


class ConfirmedPublisher:
    """Rounds of `app`'s task messages on a connection of its own, until `close`."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._lock = threading.Lock()  # a connection is one thread's at a time
        self._conn: Any = None
        self._producer: Any = None
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
                self._drop()  # its delivery tags no longer known: a new channel next time
                if not (kept and lost):
                    raise
                self._round(task, messages, exchange, routing_key)

    def open(self) -> None:
        """Connect now, not at the first round."""
        with self._lock:
            self._open()

    def close(self) -> None:
        with self._lock:
            self._drop()

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
            self._conn.drain_events(timeout=remaining)

    def _open(self) -> Any:
        if self._producer is None:
            from kombu.messaging import Producer

            conn = self.app.connection_for_write(transport_options={"confirm_publish": False})
            self._conn = conn
            self._lost = (OSError, *conn.connection_errors, *conn.channel_errors)
            channel = conn.default_channel
            channel.events["basic_ack"].add(self._ack)
            channel.events["basic_nack"].add(self._nack)
            channel.confirm_select()
            self._producer = Producer(channel)
            self._published = 0
        return self._producer

    def _drop(self) -> None:
        conn, self._conn, self._producer = self._conn, None, None
        if conn is not None:
            conn.close()

    def _ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        else:
            self._unconfirmed.discard(tag)

    def _nack(self, tag: int, multiple: bool) -> None:
        raise NotConfirmed(f"RabbitMQ refused message {tag} of the round (nack)")
