"""The fast path of identify calls: the common call checked with exact types, straight into a
checked row, with no problem bookkeeping.

Anything it does not take plainly (a bad value, an alias, a float, a first sighting of a kind
it cannot infer) it hands back as None or TypeMismatch, and `Validator` checks the call the
full way, which says what is wrong and where. For the calls it takes, both ways agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drumbeat.model.attributes import (
    EMAIL_PATTERN,
    MAX_EXACT_INT,
    STANDARD_FIELDS,
    AttrType,
    check_standard,
    coerce,
    infer_type,
    parse_timestamp,
)

MAX_ID = 255
# A checked row, the layout the store's bulk upserts take: [user_id, email, timezone,
# unsubscribed, created_at, last_seen_at, attributes, whether an attribute is None (removed)],
# a standard field None when the call does not give it.
FIELD_SLOTS = {"email": 1, "timezone": 2, "unsubscribed": 3, "created_at": 4, "last_seen_at": 5}
ATTRIBUTES, NULLS = 6, 7
_TEXT, _NUM, _BOOL, _TIME = AttrType.STRING, AttrType.NUMBER, AttrType.BOOLEAN, AttrType.TIMESTAMP
_EMAIL, _ZONE, _FLAG = FIELD_SLOTS["email"], FIELD_SLOTS["timezone"], FIELD_SLOTS["unsubscribed"]
_ALIASES = ("userId", "messageId", "originalTimestamp")
_NO_TRAITS: dict[str, Any] = {}
_NUL = "\x00"
_match_email = EMAIL_PATTERN.match


def kinds_of(types: Mapping[str, AttrType]) -> dict[str, AttrType | int]:
    """What each trait is checked against: its type, or a standard field's slot in the row."""
    return {**types, **FIELD_SLOTS}


def fast_user_row(
    raw: Mapping[str, Any],
    kinds: Mapping[str, AttrType | int],
    zones: frozenset[str],
    learned: dict[str, AttrType],
) -> list[Any] | None:
    """The checked row of a plain identify call, or None; types first seen go to `learned`
    (the caller keeps them only if the whole call is taken)."""
    if _ALIASES[0] in raw or _ALIASES[1] in raw or _ALIASES[2] in raw:
        return None
    user_id = raw.get("user_id")
    traits = raw.get("traits", _NO_TRAITS)
    if (
        type(user_id) is not str
        or not user_id
        or len(user_id) > MAX_ID
        or user_id.isspace()
        or _NUL in user_id
        or type(traits) is not dict
    ):
        return None
    row: list[Any] = [user_id, None, None, None, None, None, None, False]
    attributes: dict[str, Any] = {}
    for name, value in traits.items():
        kind = kinds.get(name)
        if kind is _TEXT:
            if type(value) is str and _NUL not in value:
                attributes[name] = value
                continue
        elif kind is _NUM:
            if type(value) is int and -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
                attributes[name] = value
                continue
        elif kind is _BOOL:
            if type(value) is bool:
                attributes[name] = value
                continue
        elif kind is _TIME:
            if value is not None:
                attributes[name] = parse_timestamp(value)
                continue
        elif type(kind) is int:  # a standard field: its slot in the row
            if value is None:
                continue  # not given
            if type(value) is str and _NUL in value:
                return None  # the full way refuses it
            if kind > _FLAG:  # created_at, last_seen_at
                row[kind] = parse_timestamp(value)
            elif (
                (kind == _EMAIL and type(value) is str and _match_email(value))
                or (kind == _ZONE and type(value) is str and value in zones)
                or (kind == _FLAG and type(value) is bool)
            ):
                row[kind] = value
            else:
                row[kind] = check_standard(name, value)  # the general way, or TypeMismatch
            continue
        # Anything else (None, floats, first sightings, mismatches) the general way, but a
        # NUL (in a name first seen, or a value) the full way, which refuses it.
        if type(name) is not str or _NUL in name or (type(value) is str and _NUL in value):
            return None
        if value is None:
            attributes[name] = None
            row[NULLS] = True
            continue
        if kind is None:
            kind = learned.get(name) or infer_type(value)
            learned[name] = kind
        attributes[name] = coerce(value, kind)  # type: ignore[arg-type]
    row[ATTRIBUTES] = attributes
    return row


def row_of(user_id: str, fields: Mapping[str, Any], attributes: dict[str, Any]) -> list[Any]:
    """The checked row of a call checked the full way."""
    slots = [fields.get(name) for name in FIELD_SLOTS]
    return [user_id, *slots, attributes, None in attributes.values()]


def fields_of(row: list[Any]) -> dict[str, Any]:
    """The standard fields a row gives."""
    return {name: row[slot] for name, slot in FIELD_SLOTS.items() if row[slot] is not None}


assert set(FIELD_SLOTS) == set(STANDARD_FIELDS)
