"""Validated input records: what `identify` and `track` become before they reach the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drumbeat.model.attributes import Value


@dataclass(frozen=True, slots=True)
class UserRecord:
    """An identify call in stored form. `fields` holds given standard fields only;
    an attribute mapped to None is removed from the user."""

    user_id: str
    fields: dict[str, Value] = field(default_factory=dict)
    attributes: dict[str, Value | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A track call in stored form; `message_id` makes it idempotent."""

    user_id: str
    name: str
    ts: float
    properties: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
