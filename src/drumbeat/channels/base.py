"""The Channel protocol: how a rendered message leaves Drumbeat.

A channel is a class registered under the `drumbeat.channels` entry-point group (see
`registry.py`), built once per dispatcher with its settings, and given batches of rendered
messages. It must be idempotent for a given `Message.message_id` where its transport allows
(e.g. a deterministic Message-ID header), since a message whose result was not recorded
(a crash between send and record) is sent again after its lease.
"""

from __future__ import annotations

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


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient: try again later with backoff
    FAILED = "failed"  # permanent: never retried


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    provider_id: str | None = None
    error: str | None = None

    @classmethod
    def sent(cls, provider_id: str | None = None) -> Result:
        return cls(Outcome.SENT, provider_id)

    @classmethod
    def retry(cls, error: str) -> Result:
        return cls(Outcome.RETRY, error=error)

    @classmethod
    def failed(cls, error: str) -> Result:
        return cls(Outcome.FAILED, error=error)


class Channel(Protocol):
    """What the dispatcher needs of a channel.

    - `name`: the key campaign steps use (`channel: email`).
    - `send_batch(messages)`: one Result per message, same order. It must not raise for a
      single message's trouble (return RETRY or FAILED for it); an exception means the
      whole batch is retried.
    - `close()`: release connections.
    """

    name: ClassVar[str]

    def send_batch(self, messages: Sequence[Message]) -> list[Result]: ...

    def close(self) -> None: ...
