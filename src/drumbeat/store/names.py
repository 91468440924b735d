"""Which names (attributes and standard fields) a user's writes changed, kept on the user's
row by the write itself, so that the planner looks at a changed user only for the campaigns
whose rules read one of them (`pipeline/planner.py`).

`changed_names` is a JSON object of the names written, each with when it was last written
(a superset of those changed: a write that gives a value a user already has, beside one that
changes, counts it), merged write after write; it holds every name written after
`names_after`. A new user's `names_after` is when it was made (whatever it was given may
have moved any audience), and NULL means not known at all (users from before revision
0021): the planner then looks at the user for every campaign whose watermark is not past it.
A write `NAMES_KEPT` or more after the user's last starts the names again (so they stay few),
and moves `names_after` to that last write: a campaign whose watermark is older looks at the
user whatever the names (they no longer say all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from drumbeat.ingest.rows import ATTRIBUTES, FIELD_SLOTS

NAMES_KEPT = 3600.0  # far past any tick's watermark lag: names start again after an idle hour


class Written(NamedTuple):
    """A user written to: when last, and the names written after `names_after`."""

    user_id: str
    at: float
    names_after: float | None
    names: Mapping[str, float]  # when each was last written

    def names_since(self, since: float) -> list[str] | None:
        """The names written at or after `since`, or None when not known (all may have)."""
        if not covers(self.names_after, since):
            return None
        return [name for name, at in self.names.items() if at >= since]


def names_json(names: Iterable[str], now: float) -> str:
    """The `changed_names` of one write at `now`."""
    return orjson.dumps(dict.fromkeys(names, now)).decode()


def written_names(row: Sequence[Any]) -> list[str]:
    """The names a checked row (`ingest/rows.py`) writes: its fields given, its attributes
    (set or removed)."""
    return [name for name, slot in FIELD_SLOTS.items() if row[slot] is not None] + list(
        row[ATTRIBUTES]
    )


def names_update(*, old: str, new: str, now: str, merge: str) -> str:
    """The SET clauses of an update of a user, `old` the stored row's prefix ("" or "u."),
    `new` and `now` this write's names and time, `merge` how two JSON objects merge (the
    second's values win: each name's latest write)."""
    restart = f"{old}updated_at < {now} - {NAMES_KEPT}"
    merged = merge.format(f"{old}changed_names", new)
    return (
        f"changed_names = CASE WHEN {restart} THEN {new} ELSE {merged} END, "
        f"names_after = CASE WHEN {restart} THEN {old}updated_at ELSE {old}names_after END"
    )


def covers(names_after: float | None, since: float) -> bool:
    """Whether a user's `changed_names` hold every name written at or after `since`."""
    return names_after is not None and names_after < since
