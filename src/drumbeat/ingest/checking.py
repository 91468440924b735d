"""The check of a users file, line by line, into batches of checked rows (one row per user,
later calls merged in, as `write_users` merges): run by the importing process
(`user_import`) or, for a big file, by each check process on its share of the users
(`check_processes`, which loads neither SQLAlchemy nor the store)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.files import read_calls
from drumbeat.ingest.rows import ATTRIBUTES, FIELD_SLOTS, NULLS
from drumbeat.ingest.validate import Validator, aliased


@dataclass(frozen=True, slots=True)
class Batch:
    """A lane's batch: one row per user, and how many calls it holds (before merging)."""

    lane: int
    rows: list[list[Any]]
    size: int


class BatchCutter:
    """Collects one lane's checked users (`rows`) until the batch is cut: a user named again
    is merged into the row it has (fields given later win, attributes merged)."""

    def __init__(self, lane: int = 0) -> None:
        self.lane = lane
        self.size = 0  # calls in the batch
        self._rows: dict[str, list[Any]] = {}  # in the order users first came

    def add(self, row: list[Any]) -> None:
        """Add a checked user."""
        self.size += 1
        earlier = self._rows.get(row[0])
        if earlier is not None:
            for slot in FIELD_SLOTS.values():
                if row[slot] is None:
                    row[slot] = earlier[slot]
            attributes = row[ATTRIBUTES] = {**earlier[ATTRIBUTES], **row[ATTRIBUTES]}
            row[NULLS] = None in attributes.values()
        self._rows[row[0]] = row

    def cut(self) -> Batch:
        batch = Batch(self.lane, list(self._rows.values()), self.size)
        self.size = 0
        self._rows = {}
        return batch


Bad = Callable[[int, bytes, list[Problem]], None]
"""Told each bad line: its number, its bytes as read, what is wrong with it."""


def user_hash(user_id: str) -> int:
    """A user id's hash, the same in every process and every run (Python's `hash` of a
    str is seeded per process): which lane and which check process take a user is
    reproducible."""
    return zlib.crc32(user_id.encode())


def check_file(
    path: Path,
    fmt: str,
    validator: Validator,
    *,
    size: int,
    lanes: int = 1,
    route: Callable[[str], int] = user_hash,
    skip_invalid: bool,
    bad: Bad,
    share: int = 0,
    shares: int = 1,
    first_seen: dict[str, int] | None = None,
) -> Iterator[tuple[Batch | None, int]]:
    """Check the users file's calls (those of `share` of `shares`, `share_of`) and yield
    each lane's batches as they fill, with the bytes of the file read so far; last, (None,
    bytes read). Once a line is bad (without `skip_invalid`) nothing more is cut: nothing
    will be imported. `first_seen` is told the line where each new attribute type was
    fixed."""
    fast, check = validator.fast_row, validator.user_row
    cutters = [BatchCutter(lane) for lane in range(lanes)]
    any_bad = False
    read = 0
    for number, raw, call, error, read in read_calls(path, "users", fmt):
        if shares > 1 and share_of(call, shares) != share:
            continue
        row = None if call is None else fast(call)
        if row is None:  # the full way, which says what is wrong
            try:
                if call is None:
                    raise InvalidInput(Problem(f"line {number}", error))
                row = check(call, f"line {number}: ")
            except InvalidInput as exc:
                any_bad = True
                bad(number, raw, exc.problems)
                continue
        if first_seen is not None and len(validator.new_types) > len(first_seen):
            first_seen.update(dict.fromkeys(validator.new_types.keys() - first_seen, number))
        if skip_invalid or not any_bad:  # else nothing will be imported: no need
            cutter = cutters[route(row[0]) % lanes] if lanes > 1 else cutters[0]
            cutter.add(row)
            if cutter.size >= size:
                yield cutter.cut(), read
    if skip_invalid or not any_bad:
        yield from ((cutter.cut(), read) for cutter in cutters if cutter.size)
    yield None, read


def share_of(call: Mapping[str, Any] | None, shares: int) -> int:
    """Which of `shares` check processes takes a call: by its user id (every call of a user
    in one process, so they land in file order; crc32, the same in every process), a call
    without one by the first (it is bad: the first says so)."""
    if call is None:
        return 0
    user_id = aliased(call).get("user_id") if "userId" in call else call.get("user_id")
    if type(user_id) is int:
        user_id = str(user_id)
    if type(user_id) is not str:
        return 0
    return user_hash(user_id) % shares
