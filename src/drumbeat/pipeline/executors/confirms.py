"""Publishing a round of task messages that RabbitMQ confirms together.

Celery's publisher confirms (`confirm_publish`) wait for each message's confirm before the
next publish: a round trip a message, with a quorum queue's log write behind each (about a
millisecond here), so a scheduler publishing a thousand batches spent a second waiting.
Celery has no batch confirm (celery/celery#9887), so this publishes the round on a channel
of its own in confirm mode and waits once, for every message's confirm. Same guarantee:
`send_confirmed` returns only when RabbitMQ holds every message of the round.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from drumbeat.errors import DrumbeatError

if TYPE_CHECKING:
    from celery import Celery

CONFIRM_TIMEOUT = 30.0  # seconds to wait for a round's confirms
PERSISTENT = 2  # AMQP's delivery mode: kept on disk (a quorum queue keeps every message so)


class NotConfirmed(DrumbeatError, RuntimeError):
    """RabbitMQ refused a message of the round (nack), or did not confirm it in time."""


def send_confirmed(
    app: Celery, task: str, messages: list[list[Any]], *, exchange: str, routing_key: str
) -> None:
    """Publish `task` through `exchange` with `routing_key` once for each args in
    `messages`, and wait until RabbitMQ confirmed them all. Raises NotConfirmed (or a
    broker error) having maybe published some: the caller publishes the round again, and
    a batch published twice is worked once.

    Each message is Celery's own (`as_task_v2`, what `send_task` sends), published by
    kombu's producer without `send_task`'s routing and signals: half its cost a message."""
    if not messages:
        return
    from kombu.messaging import Producer
    from kombu.utils.uuid import uuid

    with app.connection_for_write(transport_options={"confirm_publish": False}) as conn:
        channel = conn.default_channel
        waiting = _Confirms(len(messages))
        channel.events["basic_ack"].add(waiting.ack)
        channel.events["basic_nack"].add(waiting.nack)
        channel.confirm_select()
        producer = Producer(channel)
        for args in messages:
            message = app.amqp.as_task_v2(uuid(), task, args=args)
            producer.publish(
                message.body,
                exchange=exchange,
                routing_key=routing_key,
                headers=message.headers,
                serializer="json",
                delivery_mode=PERSISTENT,
                retry=False,
                **message.properties,
            )
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while waiting.unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotConfirmed(f"{len(waiting.unconfirmed)} messages left unconfirmed")
            conn.drain_events(timeout=remaining)


class _Confirms:
    """The delivery tags of a round (1…n: the channel is new) not yet confirmed."""

    def __init__(self, count: int) -> None:
        self.unconfirmed = set(range(1, count + 1))

    def ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.unconfirmed = {t for t in self.unconfirmed if t > tag}
        else:
            self.unconfirmed.discard(tag)

    def nack(self, tag: int, multiple: bool) -> None:
        raise NotConfirmed(f"RabbitMQ refused message {tag} of the round (nack)")
