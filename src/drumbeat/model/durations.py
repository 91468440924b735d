"""Durations (`30s`, `15m`, `2h`, `3d`, `2w`) and the times rules compare against.

A duration is a number of seconds. A time is absolute (ISO-8601 with an offset, or epoch
seconds) or relative to the evaluation's `now` (`now`, `3d ago`, `in 2h`).
Pure: nothing here reads the clock; relative times resolve against a `now` given to them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from drumbeat.model.attributes import TypeMismatch, format_timestamp, parse_timestamp

UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_AGO = re.compile(r"^(.+?)\s+ago$")
_IN = re.compile(r"^in\s+(.+)$")

DURATION_HELP = "expected a duration such as 30s, 15m, 2h, 3d or 2w"
TIME_HELP = "expected a time: ISO-8601 with an offset (2026-01-01T00:00:00Z), now, 3d ago or in 2h"


class InvalidDuration(ValueError):
    """A value that is not a duration; the message says what a duration looks like."""

    def __init__(self, message: str = DURATION_HELP) -> None:
        super().__init__(message)


class InvalidTime(ValueError):
    """A value that is not a time; the message says what a time looks like."""

    def __init__(self, message: str = TIME_HELP) -> None:
        super().__init__(message)


def parse_duration(value: object) -> float:
    """`"2h"` → 7200.0; a plain number (or a numeric string) is seconds. Never negative."""
    if isinstance(value, bool):
        raise InvalidDuration()
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise InvalidDuration(f"{DURATION_HELP} (not negative)")
        return float(value)
    if not isinstance(value, str):
        raise InvalidDuration()
    match = _DURATION.match(value.strip().lower())
    if match is None:
        raise InvalidDuration()
    amount, unit = match.groups()
    return float(amount) * UNITS[unit or "s"]


def format_duration(seconds: float) -> str:
    """7200.0 → `"2h"`: the largest unit that divides it exactly, else seconds."""
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidDuration(f"cannot format {seconds!r} as a duration")
    for unit in ("w", "d", "h", "m"):
        size = UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds!r}s"


@dataclass(frozen=True, slots=True)
class TimeRef:
    """A time in a rule: `seconds` since the epoch, or since `now` when `relative`."""

    seconds: float
    relative: bool = False

    def resolve(self, now: float) -> float:
        """Epoch seconds of this time for an evaluation at `now`."""
        return now + self.seconds if self.relative else self.seconds

    def __str__(self) -> str:
        if not self.relative:
            return format_timestamp(self.seconds)
        if self.seconds == 0:
            return "now"
        span = format_duration(abs(self.seconds))
        return f"{span} ago" if self.seconds < 0 else f"in {span}"


def parse_time(value: object) -> TimeRef:
    """`"3d ago"`, `"in 2h"`, `"now"`, ISO-8601 with an offset, or epoch seconds. Raises
    InvalidTime."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "now":
            return TimeRef(0.0, relative=True)
        for pattern, sign in ((_AGO, -1.0), (_IN, 1.0)):
            match = pattern.match(text)
            if match is not None:
                try:
                    return TimeRef(sign * parse_duration(match.group(1)), relative=True)
                except InvalidDuration:
                    raise InvalidTime() from None
    if isinstance(value, str | int | float | datetime):
        try:
            return TimeRef(parse_timestamp(value))
        except TypeMismatch:
            raise InvalidTime() from None
    raise InvalidTime()


def is_time(value: object) -> bool:
    """Whether a rule value reads as a time (a string in one of the time forms)."""
    if not isinstance(value, str):
        return False
    try:
        parse_time(value)
    except InvalidTime:
        return False
    return True
