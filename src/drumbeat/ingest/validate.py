"""Turn raw identify/track calls (Segment's shape) into typed records, or say what is wrong.

Attribute types are fixed by declaration or by the first value seen; `Validator` remembers
the types a run has fixed so far, so a file that disagrees with itself is caught too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.rows import ATTRIBUTES, MAX_ID, fast_user_row, fields_of, kinds_of, row_of
from drumbeat.model.attributes import (
    STANDARD_FIELDS,
    AttrType,
    TypeMismatch,
    Value,
    check_standard,
    coerce,
    infer_type,
    json_type_name,
    parse_timestamp,
    time_zones,
)
from drumbeat.model.records import EventRecord, UserRecord

MAX_NAME = 200
NUL = "\x00"
HAS_NUL = "contains a NUL character (\\u0000): not allowed"
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
# Segment's camelCase spellings, accepted as aliases.
_ALIASES = {"userId": "user_id", "messageId": "message_id", "originalTimestamp": "timestamp"}


def from_text(text: str, known: AttrType | None) -> object:
    """A CSV cell to a value: typed by the attribute's type when known, else by its look."""
    if known is AttrType.STRING:
        return text
    if known is AttrType.BOOLEAN or (known is None and text.lower() in ("true", "false")):
        return {"true": True, "false": False}.get(text.lower(), text)
    if known is AttrType.NUMBER or (known is None and _NUMBER.match(text)):
        if not _NUMBER.match(text):
            return text
        number = float(text)
        return (
            int(number)
            if number.is_integer() and "." not in text and "e" not in text.lower()
            else number
        )
    return text


def nul_problems(value: object, where: str) -> list[Problem]:
    """Where `value` (a string, or names and strings in objects and lists, nested) holds a
    NUL character: PostgreSQL keeps none in text or JSON, so neither store takes one."""
    if isinstance(value, str):
        return [Problem(where, HAS_NUL)] if NUL in value else []
    if isinstance(value, Mapping):
        found = []
        for name, item in value.items():
            path = f"{where}.{shown(name)}"
            if NUL in str(name):
                found.append(Problem(path, f"the name {HAS_NUL}"))
            found += nul_problems(item, path)
        return found
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in nul_problems(item, f"{where}[{i}]")]
    return []


def shown(name: object) -> str:
    """A name as a problem's path shows it: a NUL as the escape JSON spells it."""
    return str(name).replace(NUL, "\\u0000")


def aliased(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {_ALIASES.get(key, key): value for key, value in raw.items()}


class Validator:
    """Checks calls against the attribute types; `new_types` collects first sightings."""

    def __init__(self, known: Mapping[str, AttrType], *, now: float, text_values: bool = False):
        self.types = dict(known)
        self.new_types: dict[str, AttrType] = {}
        self.now = now
        self.text_values = text_values  # CSV: every value arrives as a string
        self._kinds = kinds_of(self.types)  # for the fast path
        self._zones = time_zones()
        self._learned: dict[str, AttrType] = {}

    def _user_id(self, raw: Mapping[str, Any], problems: list[Problem], where: str) -> str:
        user_id = raw.get("user_id")
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id.strip():
            problems.append(Problem(f"{where}user_id", "required: a non-empty string"))
            return ""
        if len(user_id) > MAX_ID:
            problems.append(Problem(f"{where}user_id", f"longer than {MAX_ID} characters"))
        if NUL in user_id:
            problems.append(Problem(f"{where}user_id", HAS_NUL))
        return user_id

    def user(self, raw: Mapping[str, Any], where: str = "") -> UserRecord:
        """One identify call; raises InvalidInput listing every problem in it."""
        row = self.user_row(raw, where)
        return UserRecord(row[0], fields_of(row), row[ATTRIBUTES])

    def user_row(self, raw: Mapping[str, Any], where: str = "") -> list[Any]:
        """`user` as a checked row (see `rows`): the fast path first, else the full way."""
        return self.fast_row(raw) or row_of(*self._user_checked(raw, where))

    def fast_row(self, raw: Mapping[str, Any]) -> list[Any] | None:
        """The checked row of a plain call, or None if the call needs the full way."""
        if self.text_values:
            return None
        learned = self._learned
        try:
            row = fast_user_row(raw, self._kinds, self._zones, learned)
        except TypeMismatch:
            row = None
        if learned:
            if row is not None:
                self._learn(learned)
            learned.clear()
        return row

    def _learn(self, seen: Mapping[str, AttrType]) -> None:
        """Types fixed by first sight in a valid call."""
        self.types.update(seen)
        self.new_types.update(seen)
        self._kinds = kinds_of(self.types)

    def _user_checked(
        self, raw: Mapping[str, Any], where: str
    ) -> tuple[str, dict[str, Value], dict[str, Value | None]]:
        raw = aliased(raw)
        problems: list[Problem] = []
        user_id = self._user_id(raw, problems, where)
        traits = raw.get("traits", {})
        if not isinstance(traits, Mapping):
            problems.append(
                Problem(f"{where}traits", f"expected an object, got {json_type_name(traits)}")
            )
            traits = {}
        fields: dict[str, Value] = {}
        attributes: dict[str, Value | None] = {}
        seen: dict[str, AttrType] = {}
        for name, value in traits.items():
            if self.text_values and isinstance(value, str):
                if value == "":
                    continue
                value = from_text(value, STANDARD_FIELDS.get(name) or self.types.get(name))
            if NUL in str(name) or (isinstance(value, str) and NUL in value):
                problems += nul_problems({name: value}, f"{where}traits")
                continue
            try:
                if name in STANDARD_FIELDS:
                    if value is not None:
                        fields[name] = check_standard(name, value)
                elif value is None:
                    attributes[name] = None
                else:
                    kind = self.types.get(name) or seen.get(name) or infer_type(value)
                    attributes[name] = coerce(value, kind)
                    if name not in self.types:
                        seen[name] = kind
            except TypeMismatch as exc:
                label = f"user {user_id!r}, attribute {name!r}"
                problems.append(Problem(f"{where}traits.{name}", f"{label}: {exc}"))
        if problems:
            raise InvalidInput(problems)
        self._learn(seen)
        return user_id, fields, attributes

    def event(
        self, raw: Mapping[str, Any], where: str = "", *, nul_free: bool = False
    ) -> EventRecord:
        """One track call; raises InvalidInput listing every problem in it. `nul_free`: the
        caller knows no string in `raw` holds a NUL (its JSON has no `\\u0000`), so the
        properties need not be walked for one."""
        raw = aliased(raw)
        problems: list[Problem] = []
        user_id = self._user_id(raw, problems, where)
        name = raw.get("event")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            problems.append(
                Problem(
                    f"{where}event",
                    f"required: a non-empty string of at most {MAX_NAME} characters",
                )
            )
        elif NUL in name:
            problems.append(Problem(f"{where}event", HAS_NUL))
        ts = self.now
        if raw.get("timestamp") not in (None, ""):
            try:
                stamp = raw["timestamp"]
                ts = parse_timestamp(
                    float(stamp) if self.text_values and _NUMBER.match(stamp) else stamp
                )
            except TypeMismatch as exc:
                problems.append(Problem(f"{where}timestamp", str(exc)))
        properties = raw.get("properties", {})
        if not isinstance(properties, Mapping):
            problems.append(
                Problem(
                    f"{where}properties", f"expected an object, got {json_type_name(properties)}"
                )
            )
        elif not nul_free:
            problems += nul_problems(properties, f"{where}properties")
        message_id = raw.get("message_id")
        if message_id is not None and (not isinstance(message_id, str) or len(message_id) > MAX_ID):
            problems.append(
                Problem(f"{where}message_id", f"expected a string of at most {MAX_ID} characters")
            )
        elif message_id is not None and NUL in message_id:
            problems.append(Problem(f"{where}message_id", HAS_NUL))
        if problems:
            raise InvalidInput(problems)
        return EventRecord(user_id, str(name), ts, dict(properties), message_id or None)
