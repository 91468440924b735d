"""A users file, checked once and imported from a stage.

Pass 1 reads and checks every line (the fast path of `rows` for plain calls) and, while no
line is bad (or with `skip_invalid`), cuts the good ones into batches that a writer thread
stages in the database as the next lines are checked. Pass 2, once the whole file is known
good, upserts the staged batches, each in a transaction of its own: in order within a lane,
the lanes (PostgreSQL: two connections, each user always in the same one) side by side.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.files import read_calls
from drumbeat.ingest.staging import BatchCutter, StagedBatch, UserImport, open_user_import
from drumbeat.ingest.validate import Validator
from drumbeat.ingest.writer import BackgroundWriter, run_lanes
from drumbeat.model.attributes import AttrType
from drumbeat.store import Store

if TYPE_CHECKING:
    from drumbeat.ingest.importer import ImportReport, Rejects

Progress = Callable[[int], None]
Rows = list[tuple[Any, ...]]
Staging = tuple[int, Rows, bool]  # lane, rows, whether they were staged before
# Rows per staging call, whatever the batch size: each call costs the writer thread a few
# hand-overs of the GIL, so calls are few and large.
STAGE_ROWS = 8_192


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pass 1 makes a few containers a line and drops them all, without cycles: the cyclic
    collector would only walk them over and over (a fifth of the time of a big import)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class UsersImport:
    """One users file into one workspace; `run` fills the report. `route` picks a user's
    lane (the same for every call of the user) from a hash of the user id."""

    route: Callable[[str], int] = hash

    def __init__(self, store: Store, ws: int, fmt: str, now: float, skip_invalid: bool) -> None:
        self.store, self.ws, self.fmt, self.now = store, ws, fmt, now
        self.skip_invalid = skip_invalid
        self.validator = Validator(store.attribute_types(ws), now=now, text_values=fmt == "csv")
        self.types_seen: dict[str, AttrType] = {}  # every type first seen in the file so far
        self.batches: list[list[StagedBatch]] = []  # by lane
        self.unstaged: list[Rows] = []  # rows cut, not yet handed to the writer, by lane
        self.read = 0  # bytes of the file read

    def run(
        self, path: Path, report: ImportReport, rejects: Rejects, progress: Progress | None
    ) -> None:
        stage = open_user_import(self.store, self.ws, self.now)
        try:
            self.batches = [[] for _ in range(stage.lanes)]
            self.unstaged = [[] for _ in range(stage.lanes)]
            with (
                no_cyclic_gc(),
                BackgroundWriter[Staging](lambda item: stage.stage(*item)) as writer,
            ):
                self._check(path, stage.lanes, report, rejects, writer)
            if report.problems and not self.skip_invalid:
                what = f"users file {path} (nothing was imported)"
                raise InvalidInput(report.problems, what=what)
            self._write(stage, report, progress)
        finally:
            stage.close()

    def _check(
        self,
        path: Path,
        lanes: int,
        report: ImportReport,
        rejects: Rejects,
        writer: BackgroundWriter[Staging],
    ) -> None:
        fast, check = self.validator.fast_row, self.validator.user_row
        size, problems, skip_invalid = self.store.batch_size, report.problems, self.skip_invalid
        cutters = [BatchCutter(lane) for lane in range(lanes)]
        route = type(self).route
        read = last = 0
        for number, raw, call, error, read in read_calls(path, "users", self.fmt):
            row = None if call is None else fast(call)
            if row is None:  # the full way, which says what is wrong
                try:
                    if call is None:
                        raise InvalidInput(Problem(f"line {number}", error))
                    row = check(call, f"line {number}: ")
                except InvalidInput as exc:
                    problems.extend(exc.problems)
                    if skip_invalid:
                        report.rejected += 1
                        rejects.write_bytes(raw)
                    continue
            if skip_invalid or not problems:  # else nothing will be imported: no need
                cutter = cutters[route(row[1]) % lanes] if lanes > 1 else cutters[0]
                cutter.add(row, read - last)
                last = read
                if cutter.size >= size:
                    self._cut(cutter, writer)
                elif cutter.waiting >= STAGE_ROWS:  # a big batch: stage it as it comes
                    self._stage(cutter.lane, cutter.take(), writer)
        self.read = read
        if skip_invalid or not problems:
            for cutter in cutters:
                if cutter.size:
                    self._cut(cutter, writer)
            for lane in range(lanes):
                self._flush(lane, writer)

    def _cut(self, cutter: BatchCutter, writer: BackgroundWriter[Staging]) -> None:
        self.types_seen.update(self.validator.new_types)
        self.validator.new_types = {}
        batch, fresh, again = cutter.cut(self.types_seen)
        self.batches[batch.lane].append(batch)
        self._stage(batch.lane, fresh, writer)
        if again:  # rows staged before the same user came back: after them, staged again
            self._flush(batch.lane, writer)
            writer.put((batch.lane, again, True))

    def _stage(self, lane: int, rows: Rows, writer: BackgroundWriter[Staging]) -> None:
        """Rows to stage, handed to the writer in calls of at least STAGE_ROWS."""
        self.unstaged[lane] += rows
        if len(self.unstaged[lane]) >= STAGE_ROWS:
            self._flush(lane, writer)

    def _flush(self, lane: int, writer: BackgroundWriter[Staging]) -> None:
        if self.unstaged[lane]:
            writer.put((lane, self.unstaged[lane], False))
            self.unstaged[lane] = []

    def _write(self, stage: UserImport, report: ImportReport, progress: Progress | None) -> None:
        def write(batch: StagedBatch) -> int:
            return stage.write(batch.lane, batch.number, batch.size, batch.shapes, batch.new_types)

        done = 0
        for batch, written in run_lanes(write, self.batches):
            report.written += written
            report.imported += batch.size
            done += batch.read
            if progress is not None:
                progress(batch.read)
        if progress is not None and self.read > done:
            progress(self.read - done)  # blank and bad lines
