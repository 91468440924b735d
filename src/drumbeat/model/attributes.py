"""Attribute types, the standard user fields, and the one canonical stored form of each value.

Stored forms: string → str, number → int or float, boolean → bool, timestamp → float seconds
since the Unix epoch (UTC). Timestamps come in as ISO-8601 with an offset, or epoch seconds.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from zoneinfo import available_timezones

Value = str | int | float | bool


class AttrType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"


STANDARD_FIELDS: dict[str, AttrType] = {
    "email": AttrType.STRING,
    "timezone": AttrType.STRING,
    "unsubscribed": AttrType.BOOLEAN,
    "created_at": AttrType.TIMESTAMP,
    "last_seen_at": AttrType.TIMESTAMP,
}

_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|z|[+-]\d{2}:?\d{2})$"
)
_EMAIL = EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")
# Numbers are compared as IEEE doubles in SQL: integers beyond this lose precision there.
MAX_EXACT_INT = 2**53


class TypeMismatch(ValueError):
    """A value that does not fit the attribute's type."""

    def __init__(self, expected: AttrType | str, given: str) -> None:
        self.expected = str(expected)
        self.given = given
        super().__init__(f"expected {expected}, got {given}")


def json_type_name(value: object) -> str:
    """The name of a raw value's type as a user would say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "timestamp-like string" if _ISO_DATETIME.match(value) else "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def parse_timestamp(value: object) -> float:
    """ISO-8601 with an offset, or epoch seconds, to epoch seconds. Raises TypeMismatch."""
    # The common shapes, YYYY-MM-DDTHH:MM:SS then Z or ±HH:MM, checked by the characters at
    # 4, 7, 10, 13, 16 (and 19, 22): on them `fromisoformat` reads what `_ISO_DATETIME` takes
    # (anything it refuses takes the full path below, which says why).
    if type(value) is str and (
        (len(value) == 20 and value[19] == "Z" and value[4:17:3] == "--T::")
        or (len(value) == 25 and value[4:23:3] in _OFFSET_SHAPES)
    ):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return _parse_timestamp(value)


_OFFSET_SHAPES = ("--T::+:", "--T::-:")


def _parse_timestamp(value: object) -> float:
    if isinstance(value, bool):
        raise TypeMismatch(AttrType.TIMESTAMP, "boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise TypeMismatch(AttrType.TIMESTAMP, "a non-finite number")
        return float(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeMismatch(AttrType.TIMESTAMP, "a datetime without a time zone")
        return value.timestamp()
    if isinstance(value, str):
        if not _ISO_DATETIME.match(value.strip()):
            raise TypeMismatch(AttrType.TIMESTAMP, f"{value!r} (use ISO-8601 with an offset)")
        try:
            return datetime.fromisoformat(value.strip().replace("z", "Z")).timestamp()
        except ValueError as exc:
            raise TypeMismatch(AttrType.TIMESTAMP, f"{value!r} ({exc})") from None
    raise TypeMismatch(AttrType.TIMESTAMP, json_type_name(value))


def format_timestamp(epoch: float) -> str:
    """Epoch seconds to the canonical ISO-8601 form, UTC with a Z."""
    text = datetime.fromtimestamp(epoch, UTC).isoformat()
    return text.replace("+00:00", "Z")


def infer_type(value: object) -> AttrType:
    """The type a first-seen value fixes for its attribute."""
    if isinstance(value, bool):
        return AttrType.BOOLEAN
    if isinstance(value, int | float):
        return AttrType.NUMBER
    if isinstance(value, str):
        return AttrType.TIMESTAMP if _ISO_DATETIME.match(value.strip()) else AttrType.STRING
    raise TypeMismatch("a string, number, boolean or timestamp", json_type_name(value))


def coerce(value: object, attr_type: AttrType) -> Value:
    """A raw value to the stored form of `attr_type`, or TypeMismatch naming both types."""
    # Exact types first: the common case, without the isinstance chain (bool is no int here).
    if attr_type is AttrType.STRING:
        if type(value) is str:
            return value
    elif attr_type is AttrType.NUMBER:
        if type(value) is int and -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            return value
        if type(value) is float and math.isfinite(value):
            return value
    elif attr_type is AttrType.BOOLEAN:
        if type(value) is bool:
            return value
    else:
        return parse_timestamp(value)
    return _coerce(value, attr_type)


def _coerce(value: object, attr_type: AttrType) -> Value:
    if attr_type is AttrType.TIMESTAMP:
        return parse_timestamp(value)
    if attr_type is AttrType.BOOLEAN:
        if isinstance(value, bool):
            return value
    elif attr_type is AttrType.NUMBER:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise TypeMismatch(attr_type, "a non-finite number")
            if isinstance(value, int) and abs(value) > MAX_EXACT_INT:
                raise TypeMismatch(attr_type, f"an integer beyond ±2**53 ({value})")
            return value
    elif isinstance(value, str):
        return value
    raise TypeMismatch(attr_type, json_type_name(value))


@cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names a `timezone` may hold."""
    return frozenset(available_timezones())


def check_standard(name: str, value: object) -> Value:
    """Coerce a standard field's value and check what its type alone cannot (email, zone)."""
    stored = coerce(value, STANDARD_FIELDS[name])
    if name == "timezone" and stored not in time_zones():
        raise TypeMismatch("an IANA time zone such as Europe/Paris", repr(value))
    if name == "email" and not _EMAIL.match(str(stored)):
        raise TypeMismatch("an email address", repr(value))
    return stored
