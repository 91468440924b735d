"""A batch of checked rows (`rows`) as both stores stage a users import: flat values, the
patches of the users that remove attributes, the batch's shapes. Staged where the batch is
cut (in a check process, for a big file: the importing process only hands the values to the
database), without SQLAlchemy: a check process does not load it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from drumbeat.store.names import names_json, written_names

WIDTH = 9
"""Values a user: user_id, email, timezone, unsubscribed, created_at, last_seen_at, the
attributes without nulls (JSON), whether it removes some, the names it writes (JSON)."""


@dataclass(slots=True)
class Staged:
    values: list[Any]  # WIDTH a user
    patches: dict[str, dict[str, Any]]  # the whole patch (nulls too) of a user removing some
    shapes: set[tuple[bool, bool]]  # (gives unsubscribed, removes attributes) of its users

    def __len__(self) -> int:
        """Users staged."""
        return len(self.values) // WIDTH

    def message(self) -> dict[str, Any]:
        """As JSON takes it (`from_message` reads it back)."""
        return {"values": self.values, "patches": self.patches, "shapes": list(self.shapes)}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Staged:
        shapes = {(gives, removes) for gives, removes in message["shapes"]}
        return cls(message["values"], message["patches"], shapes)


def stage(rows: Iterable[Sequence[Any]], now: float) -> Staged:
    """Stage checked rows written at `now`."""
    staged = Staged([], {}, set())
    values, patches, shapes = staged.values, staged.patches, staged.shapes
    dumps = orjson.dumps
    # A file's users mostly give the same names: each set's JSON is made once a batch.
    names_of: dict[tuple[Any, ...], str] = {}
    for row in rows:
        user_id, email, zone, unsubscribed, created, seen, attributes, removes = row
        given = (email is None, zone is None, unsubscribed is None, created is None, seen is None)
        key = (*given, *attributes)
        names = names_of.get(key)
        if names is None:
            names = names_of[key] = names_json(written_names(row), now)
        if removes:
            patches[user_id] = attributes
            attributes = {k: v for k, v in attributes.items() if v is not None}
        attrs = dumps(attributes).decode()
        values += (user_id, email, zone, unsubscribed, created, seen, attrs, removes, names)
        shapes.add((unsubscribed is not None, removes))
    return staged
