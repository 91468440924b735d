"""The values a filter or an option may take, as enums: the CLI lists them in `--help` and
refuses others, the Python API refuses others with the same list. Import nothing heavy here:
`drumbeat --help` reads this module."""

from __future__ import annotations

from enum import StrEnum


class MemberState(StrEnum):
    """A membership's state (the engine's `State`; a test holds the two together)."""

    ACTIVE = "active"
    CONVERTED = "converted"
    LEFT_AUDIENCE = "left_audience"
    INACTIVE = "inactive"
    COMPLETED = "completed"


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"


class BatchStatus(StrEnum):
    """A batch's status: waiting, claimed by a worker, finished (done, or skipped: its
    campaign was no longer active), or dead (claimed BATCH_ATTEMPTS times, never finished)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    DEAD = "dead"


class Lane(StrEnum):
    """A queue of the distributed shape, each with its own workers: batches of cheap
    campaigns, of slow ones, and sending."""

    FAST = "fast"
    SLOW = "slow"
    DISPATCH = "dispatch"


class Format(StrEnum):
    """How a command prints rows: a table for people, JSON lines for scripts."""

    TABLE = "table"
    JSONL = "jsonl"


class FileFormat(StrEnum):
    """An import file's format (by default, its suffix says)."""

    JSONL = "jsonl"
    CSV = "csv"


def choice(kind: type[StrEnum], value: str | None, what: str) -> str | None:
    """`value` if it is one of `kind`'s values (or None); else InvalidInput listing them."""
    if value is None or value in kind._value2member_map_:
        return value
    from drumbeat.errors import InvalidInput

    allowed = ", ".join(member.value for member in kind)
    raise InvalidInput(f"{what} {value!r}: use one of {allowed}")
