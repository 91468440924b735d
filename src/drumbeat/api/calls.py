"""Segment tracking messages to typed records, through the importer's `Validator`.

A message's problems are named at their path (`batch[3].traits.plan`) in Segment's own
spelling (`userId`, `messageId`), so a client can find the field it sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.rows import MAX_ID
from drumbeat.ingest.validate import MAX_NAME, Validator
from drumbeat.model.attributes import (
    TypeMismatch,
    check_standard,
    json_type_name,
    parse_timestamp,
)
from drumbeat.model.records import EventRecord, UserRecord

SUPPORTED = ("identify", "track")
NOT_YET = ("alias", "page", "screen", "group")
MAX_MESSAGE = 32 * 1024  # Segment's limit for one call
_SEGMENT_NAMES = {"user_id": "userId", "message_id": "messageId"}


@dataclass
class Checked:
    """The records of the good messages, and the problems of the bad ones."""

    users: list[UserRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    refused: int = 0


def not_supported(kind: str) -> str:
    return f"{kind!r} calls are not supported yet (only identify and track)"


def check_messages(
    messages: Sequence[Any], kinds: Sequence[str | None], validator: Validator, where: str
) -> Checked:
    """Each message with the kind its endpoint gives (None: its own `type`, as in a batch)."""
    checked = Checked()
    for index, (message, kind) in enumerate(zip(messages, kinds, strict=True)):
        at = f"{where}[{index}]." if where else ""
        try:
            _check_one(message, kind, validator, at, checked)
        except InvalidInput as exc:
            checked.problems.extend(_segment_spelling(p) for p in exc.problems)
            checked.refused += 1
    return checked


def _check_one(
    message: Any, kind: str | None, validator: Validator, at: str, checked: Checked
) -> None:
    """Add the message's records to `checked`, or raise naming every bad field in it."""
    if not isinstance(message, Mapping):
        raise InvalidInput(Problem(at.rstrip("."), f"expected an object, got {message!r:.40}"))
    dumped = orjson.dumps(message)
    if len(dumped) > MAX_MESSAGE:
        raise InvalidInput(Problem(at.rstrip("."), f"larger than {MAX_MESSAGE // 1024} KB"))
    kind = kind or message.get("type")
    nul_free = b"\\u0000" not in dumped
    plain = _plain_track(message, validator.now) if kind == "track" and nul_free else None
    if plain is not None:
        checked.events.append(plain)
        return
    if kind in NOT_YET:
        raise InvalidInput(Problem(f"{at}type", not_supported(kind)))
    if kind not in SUPPORTED:
        raise InvalidInput(Problem(f"{at}type", f"{kind!r}: use identify or track"))
    problems = _anonymous_only(message, at)
    timezone = _context_timezone(message, at, problems)
    records: list[UserRecord | EventRecord] = []
    try:
        if kind == "identify":
            records = [_identified(message, timezone, validator, at)]
        else:
            records = _tracked(message, timezone, validator, at, nul_free)
    except InvalidInput as exc:
        # an anonymous call was named above; the validator's "user_id required" repeats it
        problems += [p for p in exc.problems if not (problems and p.where == f"{at}user_id")]
    if problems:
        raise InvalidInput(problems)
    for record in records:
        if isinstance(record, UserRecord):
            checked.users.append(record)
        else:
            checked.events.append(record)


def _plain_track(message: Mapping[str, Any], now: float) -> EventRecord | None:
    """The event of a track call of the common shape, or None: the call takes the full way
    (`_tracked`), which names what is wrong. Common: a string userId, event and messageId
    within their lengths, properties an object, no time zone in its context, a timestamp
    that parses or none, and (checked by the caller) no NUL anywhere. Exactly the calls the
    full way takes without a problem and without a time zone, and the same record."""
    user_id, name = message.get("userId"), message.get("event")
    properties, message_id = message.get("properties", {}), message.get("messageId")
    context = message.get("context", {})
    if not (
        type(user_id) is str
        and 0 < len(user_id) <= MAX_ID
        and user_id.strip()
        and type(name) is str
        and 0 < len(name) <= MAX_NAME
        and name.strip()
        and type(properties) is dict
        and (message_id is None or (type(message_id) is str and len(message_id) <= MAX_ID))
        and type(context) is dict
        and context.get("timezone") in (None, "")
    ):
        return None
    ts, stamp = now, message.get("timestamp")
    if stamp is not None and stamp != "":
        try:
            ts = parse_timestamp(stamp)
        except TypeMismatch:
            return None
    return EventRecord(user_id, name, ts, dict(properties), message_id or None)


def _tracked(
    message: Mapping[str, Any],
    timezone: str | None,
    validator: Validator,
    at: str,
    nul_free: bool,
) -> list[UserRecord | EventRecord]:
    """The event of a track call, and the user's time zone if its context gives one.
    `nul_free`: the message's JSON holds no `\\u0000`, so no string in it has a NUL."""
    user_id = message.get("userId")
    call = {
        "user_id": user_id,
        "event": message.get("event"),
        "properties": message.get("properties", {}),
        "timestamp": message.get("timestamp"),
        "message_id": message.get("messageId"),
    }
    records: list[UserRecord | EventRecord] = [validator.event(call, at, nul_free=nul_free)]
    if timezone:
        records.append(UserRecord(str(user_id), {"timezone": timezone}, {}))
    return records


def _identified(
    message: Mapping[str, Any], timezone: str | None, validator: Validator, at: str
) -> UserRecord:
    """The user record of an identify call. Traits may come in `context.traits`, where
    RudderStack's library puts them (Segment's spec allows it too)."""
    in_context = "traits" not in message and isinstance(message.get("context"), Mapping)
    traits = message["context"].get("traits", {}) if in_context else message.get("traits", {})
    if timezone and isinstance(traits, Mapping) and "timezone" not in traits:
        traits = {**traits, "timezone": timezone}
    try:
        return validator.user({"user_id": message.get("userId"), "traits": traits}, at)
    except InvalidInput as exc:
        if not in_context:
            raise
        moved = [
            Problem(p.where.replace(f"{at}traits", f"{at}context.traits", 1), p.message)
            for p in exc.problems
        ]
        raise InvalidInput(moved) from None


def _anonymous_only(message: Mapping[str, Any], at: str) -> list[Problem]:
    if message.get("userId") in (None, "") and message.get("anonymousId") not in (None, ""):
        why = "required: anonymousId alone is not supported yet (aliases do not exist)"
        return [Problem(f"{at}userId", why)]
    return []


def _context_timezone(message: Mapping[str, Any], at: str, problems: list[Problem]) -> str | None:
    """The time zone `context` gives, if any; a bad one goes to `problems`."""
    context = message.get("context", {})
    if not isinstance(context, Mapping):
        problems.append(
            Problem(f"{at}context", f"expected an object, got {json_type_name(context)}")
        )
        return None
    timezone = context.get("timezone")
    if timezone in (None, ""):
        return None
    try:
        return str(check_standard("timezone", timezone))
    except TypeMismatch as exc:
        problems.append(Problem(f"{at}context.timezone", str(exc)))
        return None


def _segment_spelling(problem: Problem) -> Problem:
    head, _, last = problem.where.rpartition(".")
    name = _SEGMENT_NAMES.get(last)
    if name is None:
        return problem
    return Problem(f"{head}.{name}" if head else name, problem.message)
