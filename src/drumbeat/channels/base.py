"""The Channel protocol: how a rendered message leaves Drumbeat.

A channel is a class registered under the `drumbeat.channels` entry-point group (see
`registry.py`), built once per dispatcher with its settings, and given batches of rendered
messages. It must carry `Message.message_id` (the outbox key) to the provider where its
transport allows (email Message-ID, webhook Idempotency-Key; `header_key` makes it fit a
header), since a message whose result was not recorded (a crash between send and record)
is sent again after its lease: the receiver drops the duplicate by that key.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class Message:
    """A message ready to send: rendered, addressed, with the identity it is sent under."""

    message_id: str  # the outbox dedupe key: workspace/campaign/step/user/entry
    workspace: str
    campaign: str
    step: str
    user_id: str
    email: str | None
    subject: str
    body: str
    html: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)  # channel options from the step


_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$&'*+-/=?^_`{|}~")


def header_key(message_id: str) -> str:
    """The outbox key in characters any header may carry (RFC 5322 atext, so it also fits
    a Message-ID): every other character, `%` and `.` included, percent-encoded in UTF-8.
    One key gives one value and two keys never the same one."""
    return "".join(
        char if char in _ATEXT else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in message_id
    )


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient: try again later with backoff
    FAILED = "failed"  # permanent: never retried


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # RETRY: seconds the provider asked to wait (Retry-After)

    @classmethod
    def sent(cls, provider_id: str | None = None) -> Result:
        return cls(Outcome.SENT, provider_id)

    @classmethod
    def retry(cls, error: str, retry_after: float | None = None) -> Result:
        return cls(Outcome.RETRY, error=error, retry_after=retry_after)

    @classmethod
    def failed(cls, error: str) -> Result:
        return cls(Outcome.FAILED, error=error)


class Channel(Protocol):
    """What the dispatcher needs of a channel.

    - `name`: the key campaign steps use (`channel: email`).
    - `send_batch(messages)`: one Result per message, same order (the messages themselves
      may reach the provider in any order: webhooks go out concurrently). It must not raise
      for a single message's trouble (return RETRY or FAILED for it); an exception means the
      whole batch is retried.
    - `close()`: release connections.
    """

    name: ClassVar[str]

    def send_batch(self, messages: Sequence[Message]) -> list[Result]: ...

    def close(self) -> None: ...
