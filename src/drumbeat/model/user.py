"""A user as the engine and the rule predicates see it: standard fields plus custom attributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drumbeat.model.attributes import STANDARD_FIELDS, Value


@dataclass(frozen=True, slots=True)
class User:
    """One user in stored form (timestamps are epoch seconds). A field that is None is unset."""

    user_id: str
    email: str | None = None
    timezone: str | None = None
    unsubscribed: bool = False
    created_at: float | None = None
    last_seen_at: float | None = None
    attributes: dict[str, Value] = field(default_factory=dict)
    updated_at: float = 0.0
    version: int = 0

    def get(self, name: str) -> Value | None:
        """The value of a standard field or custom attribute; None when the user has none."""
        if name in STANDARD_FIELDS:
            value: Value | None = getattr(self, name)
            return value
        return self.attributes.get(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "timezone": self.timezone,
            "unsubscribed": self.unsubscribed,
            "created_at": self.created_at,
            "last_seen_at": self.last_seen_at,
            "attributes": dict(self.attributes),
            "updated_at": self.updated_at,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> User:
        return cls(**data)
