"""Import a file of identify or track calls in batches.

By default a file is checked whole before anything is written: one bad line and nothing is
imported, every bad line is listed. With `skip_invalid`, good lines are imported and bad ones
are copied, as they were, to a rejects file.

Users are checked once and written as they are checked, in transactions that commit only
once the whole file is known good (`user_import`). Events are checked whole, then read and
checked again as they are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.files import Kind, Line, file_format, raw_lines, read_lines
from drumbeat.ingest.user_import import UsersImport
from drumbeat.ingest.validate import Validator
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.store import Store

Progress = Callable[[int], None]


@dataclass
class ImportReport:
    path: Path
    kind: Kind
    imported: int = 0
    written: int = 0
    rejected: int = 0
    problems: list[Problem] = field(default_factory=list)
    rejects_path: Path | None = None
    check_processes: int = 1  # processes that checked a users file


def _checked(
    lines: Iterator[Line], validator: Validator, kind: Kind
) -> Iterator[tuple[Line, UserRecord | EventRecord | None, list[Problem]]]:
    check = validator.user if kind == "users" else validator.event
    for line in lines:
        where = f"line {line.number}"
        if line.call is None:
            yield line, None, [Problem(where, line.error)]
            continue
        try:
            yield line, check(line.call, f"{where}: "), []
        except InvalidInput as exc:
            yield line, None, exc.problems


def import_file(
    store: Store,
    ws: int,
    path: Path,
    kind: Kind,
    *,
    now: float,
    fmt: str | None = None,
    skip_invalid: bool = False,
    rejects_path: Path | None = None,
    progress: Progress | None = None,
    batch_size: int | None = None,
    processes: int | None = None,
) -> ImportReport:
    """Import the calls of `path` in batches of `batch_size` (default: the store's); a big
    users file is checked by `processes` child processes (`check_processes`; default:
    `UsersImport.default_processes`, 1)."""
    size = batch_size or store.batch_size
    fmt = file_format(path, fmt)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    report = ImportReport(path, kind)
    if kind == "users":
        rejects = Rejects(rejects_path or path.with_name(path.name + ".rejects"), fmt, path)
        try:
            users = UsersImport(
                store, ws, fmt, now, skip_invalid, batch_size=size, processes=processes
            )
            users.run(path, report, rejects, progress)
        finally:
            report.rejects_path = rejects.close()
        return report
    if not skip_invalid:
        validator = Validator(store.attribute_types(ws), now=now, text_values=fmt == "csv")
        for _line, _record, problems in _checked(read_lines(path, kind, fmt), validator, kind):
            report.problems.extend(problems)
        if report.problems:
            raise InvalidInput(report.problems, what=f"{kind} file {path} (nothing was imported)")
    validator = Validator(store.attribute_types(ws), now=now, text_values=fmt == "csv")
    rejects = Rejects(rejects_path or path.with_name(path.name + ".rejects"), fmt, path)
    batch: list[Any] = []
    try:
        lines = read_lines(path, kind, fmt, progress)
        for line, record, problems in _checked(lines, validator, kind):
            if record is None:
                report.rejected += 1
                report.problems.extend(problems)
                rejects.write(line)
                continue
            batch.append(record)
            if len(batch) >= size:
                _flush(store, ws, kind, batch, validator, now, report)
        _flush(store, ws, kind, batch, validator, now, report)
    finally:
        report.rejects_path = rejects.close()
    return report


def _flush(
    store: Store,
    ws: int,
    kind: Kind,
    batch: list[Any],
    validator: Validator,
    now: float,
    report: ImportReport,
) -> None:
    if not batch:
        return
    if kind == "users":
        report.written += store.write_users(ws, batch, now, new_types=validator.new_types)
        validator.new_types = {}
    else:
        report.written += store.write_events(ws, batch, now)
    report.imported += len(batch)
    batch.clear()


class Rejects:
    """The rejects file, opened at the first bad line; CSV rejects keep the header."""

    def __init__(self, path: Path, fmt: str, source: Path) -> None:
        self.path, self.fmt, self.source = path, fmt, source
        self.handle: Any = None

    def write(self, line: Line) -> None:
        self.write_bytes(line.raw)

    def write_bytes(self, raw: bytes) -> None:
        """One bad line, as it was read (a missing final newline added)."""
        if self.handle is None:
            self.handle = self.path.open("wb")
            if self.fmt == "csv":
                with self.source.open("rb") as source:
                    self.handle.write(next(raw for raw in raw_lines(source) if raw.strip()))
        self.handle.write(raw if raw.endswith(b"\n") else raw + b"\n")

    def close(self) -> Path | None:
        if self.handle is None:
            return None
        self.handle.close()
        return self.path
