"""A users file, checked once and written while it is checked, committed once known good.

Each line is read and checked (the fast path of `rows` for plain calls); while no line is bad
(or with `skip_invalid`), good users are cut into batches per lane (each user always in the
same lane) and each lane's thread upserts its batches, in order, in a transaction of its own
(`batches.UserImport`): the database works beside the check. Once the whole file is checked,
a file with a bad line is rolled back whole; else the attribute types first seen in it are
registered and the lanes commit. Nothing of the file is visible before that.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.batches import Batch, BatchCutter, UserImport
from drumbeat.ingest.files import read_calls
from drumbeat.ingest.validate import Validator
from drumbeat.ingest.writer import BackgroundWriter
from drumbeat.store import Store

if TYPE_CHECKING:
    from drumbeat.ingest.importer import ImportReport, Rejects

Progress = Callable[[int], None]


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """The check makes a few containers a line and keeps a batch of them alive, without
    cycles: the cyclic collector would only walk them over and over (a fifth of the time of
    a big import)."""
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

    def __init__(
        self,
        store: Store,
        ws: int,
        fmt: str,
        now: float,
        skip_invalid: bool,
        *,
        batch_size: int | None = None,
    ) -> None:
        self.store, self.ws, self.fmt, self.now = store, ws, fmt, now
        self.skip_invalid = skip_invalid
        self.batch_size = batch_size or store.batch_size
        self.validator = Validator(store.attribute_types(ws), now=now, text_values=fmt == "csv")
        self.imported = 0  # calls handed to the lanes

    def run(
        self, path: Path, report: ImportReport, rejects: Rejects, progress: Progress | None
    ) -> None:
        target = UserImport(self.store, self.ws, self.now)
        written = [0] * target.lanes

        def write(batch: Batch) -> None:
            written[batch.lane] += target.write(batch.lane, batch.rows)

        try:
            with no_cyclic_gc(), ExitStack() as stack:
                # One thread a lane, a batch queued at most: memory stays flat.
                writers = [
                    stack.enter_context(
                        BackgroundWriter[Batch](write, depth=1, name=f"drumbeat-lane-{lane}")
                    )
                    for lane in range(target.lanes)
                ]
                self._check(path, report, rejects, writers, progress)
            if report.problems and not self.skip_invalid:
                what = f"users file {path} (nothing was imported)"
                raise InvalidInput(report.problems, what=what)
            target.commit(self.validator.new_types)
            report.imported, report.written = self.imported, sum(written)
        finally:
            target.close()

    def _check(
        self,
        path: Path,
        report: ImportReport,
        rejects: Rejects,
        writers: list[BackgroundWriter[Batch]],
        progress: Progress | None,
    ) -> None:
        fast, check = self.validator.fast_row, self.validator.user_row
        size, problems, skip_invalid = self.batch_size, report.problems, self.skip_invalid
        lanes = len(writers)
        cutters = [BatchCutter(lane) for lane in range(lanes)]
        route = type(self).route
        read = done = 0  # bytes of the file read, and told to `progress`

        def hand_over(cutter: BatchCutter, read: int) -> None:
            nonlocal done
            batch = cutter.cut()
            self.imported += batch.size
            writers[batch.lane].put(batch)
            if progress is not None and read > done:
                progress(read - done)
                done = read

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
                cutter = cutters[route(row[0]) % lanes] if lanes > 1 else cutters[0]
                cutter.add(row)
                if cutter.size >= size:
                    hand_over(cutter, read)
        if skip_invalid or not problems:
            for cutter in cutters:
                if cutter.size:
                    hand_over(cutter, read)
        if progress is not None and read > done:
            progress(read - done)  # lines no batch took: bad ones, or a file not imported
