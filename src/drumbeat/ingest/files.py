"""Read import files, JSONL or CSV, one call at a time, with line numbers and bytes read."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from drumbeat.errors import InvalidInput
from drumbeat.ingest.validate import from_text

Kind = Literal["users", "events"]
EVENT_COLUMNS = ("user_id", "userId", "event", "timestamp", "message_id", "messageId")
NOT_UTF8 = "not valid UTF-8"


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a file: its number, its bytes as read, and the call it holds (or why not)."""

    number: int
    raw: bytes
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
    with path.open("rb") as handle:
        lines = _decoded(raw_lines(handle), progress)
        yield from (_jsonl(lines) if fmt == "jsonl" else _csv(lines, kind))


def raw_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of a file opened in binary, cut as text mode (newline="") cuts them: at LF,
    CR LF or a lone CR. Bytes, so that a line that is not UTF-8 is one bad line, not the end
    of the file."""
    for chunk in handle:
        if b"\r" in chunk:
            yield from chunk.splitlines(keepends=True)
        else:
            yield chunk


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
        yield line.number, line.raw, line.call, line.error, read[0]


def _jsonl_bytes(path: Path) -> Iterator[Call]:
    """JSONL read as bytes (orjson takes them as they are); a line orjson refuses is read
    again as `read_lines` reads it, which says why (or skips it if blank)."""
    read = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(raw_lines(handle), start=1):
            read += len(raw)
            try:
                call = orjson.loads(raw)
            except orjson.JSONDecodeError:
                for line in _jsonl(_decoded([raw], None, number)):
                    yield number, raw, line.call, line.error, read
                continue
            if type(call) is dict:
                yield number, raw, call, "", read
            else:
                yield number, raw, None, "expected a JSON object", read


Decoded = tuple[int, bytes, str | None]
"""(line number, the line's bytes, its text, or None if they are not UTF-8)."""


def _decoded(lines: Iterable[bytes], progress: Any, start: int = 1) -> Iterator[Decoded]:
    for number, raw in enumerate(lines, start=start):
        if progress is not None:
            progress(len(raw))
        try:
            # The first line may open with a byte-order mark (as Excel writes UTF-8 CSV).
            text: str | None = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            text = None
        yield number, raw, text


def _jsonl(lines: Iterator[Decoded]) -> Iterator[Line]:
    for number, raw, text in lines:
        if text is None:
            yield Line(number, raw, None, NOT_UTF8)
            continue
        if not text.strip():
            continue
        try:
            call = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Line(number, raw, None, f"not valid JSON: {exc}")
            continue
        if not isinstance(call, dict):
            yield Line(number, raw, None, "expected a JSON object")
            continue
        yield Line(number, raw, call)


def _csv(lines: Iterator[Decoded], kind: Kind) -> Iterator[Line]:
    header: list[str] | None = None
    for number, raw, text in lines:
        if text is None:
            yield Line(number, raw, None, NOT_UTF8)
            if header is None:  # no header, no columns
                return
            continue
        if not text.strip():
            continue
        cells = next(csv.reader([text]))
        if header is None:
            header = [cell.strip() for cell in cells]
            if "user_id" not in header and "userId" not in header:
                yield Line(number, raw, None, "the header has no user_id column")
                return
            continue
        if len(cells) != len(header):
            yield Line(number, raw, None, f"{len(cells)} cells, the header has {len(header)}")
            continue
        row = dict(zip(header, cells, strict=True))
        yield Line(number, raw, _csv_call(row, kind))


def _csv_call(row: dict[str, str], kind: Kind) -> dict[str, Any]:
    if kind == "users":
        user_id = row.pop("user_id", None) or row.pop("userId", "")
        return {"user_id": user_id, "traits": row}
    call: dict[str, Any] = {key: row.pop(key) for key in EVENT_COLUMNS if row.get(key)}
    call["properties"] = {key: from_text(value, None) for key, value in row.items() if value}
    return call
