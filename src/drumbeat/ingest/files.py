"""Read import files, JSONL or CSV, one call at a time, with line numbers and bytes read."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from drumbeat.errors import InvalidInput
from drumbeat.ingest.validate import from_text

Kind = Literal["users", "events"]
EVENT_COLUMNS = ("user_id", "userId", "event", "timestamp", "message_id", "messageId")


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a file: its number, its text as read, and the call it holds (or why not)."""

    number: int
    text: str
    call: dict[str, Any] | None
    error: str = ""


def file_format(path: Path, given: str | None = None) -> str:
    fmt = (given or path.suffix.lstrip(".")).lower()
    if fmt in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if fmt == "csv":
        return "csv"
    raise InvalidInput(f"{path}: unknown format {fmt!r}; use .jsonl or .csv, or --format")


def read_lines(path: Path, kind: Kind, fmt: str, progress: Any = None) -> Iterator[Line]:
    """Every non-blank line of `path` as a call; `progress(n)` is told the bytes read."""
    with path.open("r", encoding="utf-8", newline="") as handle:
        counted = _counting(handle, progress)
        yield from (_jsonl(counted) if fmt == "jsonl" else _csv(counted, kind))


Call = tuple[int, bytes, dict[str, Any] | None, str, int]
"""(line number, the line's bytes as read, its call or None, why not, bytes read so far)."""


def read_calls(path: Path, kind: Kind, fmt: str) -> Iterator[Call]:
    """`read_lines` as tuples, with the bytes of each line and of the file so far."""
    return _jsonl_bytes(path) if fmt == "jsonl" else _csv_calls(path, kind)


def _csv_calls(path: Path, kind: Kind) -> Iterator[Call]:
    read = [0]

    def count(size: int) -> None:
        read[0] += size

    for line in read_lines(path, kind, "csv", count):
        yield line.number, line.text.encode("utf-8"), line.call, line.error, read[0]


def _jsonl_bytes(path: Path) -> Iterator[Call]:
    """JSONL read as bytes (orjson takes them as they are), lines as `read_lines` cuts them."""
    read = number = 0
    with path.open("rb") as handle:
        for chunk in handle:
            # Text mode (newline="") also ends a line at a lone \r; bytes end lines at \n only.
            for raw in chunk.splitlines(keepends=True) if b"\r" in chunk else (chunk,):
                number += 1
                read += len(raw)
                try:
                    call = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    text = raw.decode("utf-8")  # as `read_lines` would, bad UTF-8 included
                    if not text.strip():
                        continue
                    line = next(_jsonl(iter([(number, text)])))
                    yield number, raw, line.call, line.error, read
                    continue
                if type(call) is dict:
                    yield number, raw, call, "", read
                else:
                    yield number, raw, None, "expected a JSON object", read


def _counting(handle: Any, progress: Any) -> Iterator[tuple[int, str]]:
    for number, text in enumerate(handle, start=1):
        if progress is not None:
            progress(len(text.encode("utf-8")))
        yield number, text


def _jsonl(lines: Iterator[tuple[int, str]]) -> Iterator[Line]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            call = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Line(number, text, None, f"not valid JSON: {exc}")
            continue
        if not isinstance(call, dict):
            yield Line(number, text, None, "expected a JSON object")
            continue
        yield Line(number, text, call)


def _csv(lines: Iterator[tuple[int, str]], kind: Kind) -> Iterator[Line]:
    header: list[str] | None = None
    for number, text in lines:
        if not text.strip():
            continue
        cells = next(csv.reader([text]))
        if header is None:
            header = [cell.strip() for cell in cells]
            if "user_id" not in header and "userId" not in header:
                yield Line(number, text, None, "the header has no user_id column")
                return
            continue
        if len(cells) != len(header):
            yield Line(number, text, None, f"{len(cells)} cells, the header has {len(header)}")
            continue
        row = dict(zip(header, cells, strict=True))
        yield Line(number, text, _csv_call(row, kind))


def _csv_call(row: dict[str, str], kind: Kind) -> dict[str, Any]:
    if kind == "users":
        user_id = row.pop("user_id", None) or row.pop("userId", "")
        return {"user_id": user_id, "traits": row}
    call: dict[str, Any] = {key: row.pop(key) for key in EVENT_COLUMNS if row.get(key)}
    call["properties"] = {key: from_text(value, None) for key, value in row.items() if value}
    return call
