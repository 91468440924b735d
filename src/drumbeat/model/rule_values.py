"""The values a rule holds, each validated with a short, human message on failure.

Values are kept as written (a time stays `"3d ago"`): what they mean for an attribute's type
is decided when a rule is compiled. Durations are kept in seconds and written back as `14d`.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, TypeAlias

from pydantic import PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError

from drumbeat.model.attributes import MAX_EXACT_INT, format_timestamp
from drumbeat.model.durations import (
    InvalidDuration,
    InvalidTime,
    format_duration,
    parse_duration,
    parse_time,
)

Scalar: TypeAlias = str | int | float | bool


def fail(kind: str, message: str) -> PydanticCustomError:
    """A validation error shown to users as `message`, as is."""
    return PydanticCustomError(kind, message)


def _scalar(value: object) -> Scalar:
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as a datetime
        if value.tzinfo is None:
            raise fail("time", "expected a time with an offset, such as 2026-01-01T00:00:00Z")
        return format_timestamp(value.timestamp())
    if isinstance(value, date):
        raise fail("time", "expected a time with an offset, such as 2026-01-01T00:00:00Z")
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int) and abs(value) <= MAX_EXACT_INT:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, int | float):
        raise fail("number", "expected a finite number within ±2**53")
    raise fail("scalar", "expected a string, number or boolean")


def _ordered(value: object) -> Scalar:
    scalar = _scalar(value)
    if isinstance(scalar, bool):
        raise fail("ordered", "expected a number, string or time")
    return scalar


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise fail("string", "expected a string")
    return value


def _time(value: object) -> Scalar:
    scalar = _scalar(value)
    try:
        parse_time(scalar)
    except InvalidTime as exc:
        raise fail("time", str(exc)) from None
    return scalar


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise fail("boolean", "expected true or false")
    return value


def _name(value: object) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 200
        or any(c in value for c in '"\\')
        or any(ord(c) < 32 for c in value)
    ):
        raise fail("name", "expected a name: 1-200 characters, no quotes or backslashes")
    return value


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except InvalidDuration as exc:
        raise fail("duration", str(exc)) from None


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail("count", "expected a whole number, 0 or more")
    return value


RuleValue = Annotated[Scalar, PlainValidator(_scalar)]
OrderedValue = Annotated[Scalar, PlainValidator(_ordered)]
TimeValue = Annotated[Scalar, PlainValidator(_time)]
Text = Annotated[str, PlainValidator(_text)]
Flag = Annotated[bool, PlainValidator(_flag)]
Name = Annotated[str, PlainValidator(_name)]
Count = Annotated[int, PlainValidator(_count)]
Seconds = Annotated[float, PlainValidator(_duration), PlainSerializer(format_duration)]
