"""Times and durations as people give them (`--to 2026-01-05T00:00:00Z`, `--every 1h`),
checked into epoch seconds and seconds; apart from the client, so that a command reading
them imports nothing else of it."""

from __future__ import annotations

from drumbeat.errors import InvalidInput
from drumbeat.model.attributes import TypeMismatch, parse_timestamp
from drumbeat.model.durations import InvalidDuration, parse_duration


def timestamp(value: str | float, what: str) -> float:
    """An ISO-8601 time or epoch seconds; InvalidInput naming `what` otherwise."""
    try:
        return parse_timestamp(value)
    except TypeMismatch as exc:
        raise InvalidInput(f"{what}: {exc}") from None


def interval(value: str | float, what: str) -> float:
    """A duration longer than zero: `1h`, `15m`, or seconds."""
    try:
        seconds = parse_duration(value)
    except InvalidDuration as exc:
        raise InvalidInput(f"{what}: {exc}") from None
    if seconds <= 0:
        raise InvalidInput(f"{what}: must be longer than zero")
    return float(seconds)
