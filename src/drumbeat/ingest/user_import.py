"""A users file, checked once and written while it is checked, committed once known good.

Each line is read and checked (the fast path of `rows` for plain calls); while no line is bad
(or with `skip_invalid`), good users are cut into batches per lane (each user always in the
same lane) and each lane's thread upserts its batches, in order, in a transaction of its own
(`batches.UserImport`): the database works beside the check. Once the whole file is checked,
a file with a bad line is rolled back whole; else the attribute types first seen in it are
registered and the lanes commit. Nothing of the file is visible before that.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from drumbeat.cyclic_gc import no_cyclic_gc
from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.batches import UserImport
from drumbeat.ingest.check_processes import (
    CheckCommand,
    Outcome,
    TypesDisagree,
    check_in_processes,
)
from drumbeat.ingest.checking import check_file, user_hash
from drumbeat.ingest.staging import Staged, stage
from drumbeat.ingest.validate import Validator
from drumbeat.ingest.writer import BackgroundWriter
from drumbeat.store import Store

if TYPE_CHECKING:
    from drumbeat.ingest.importer import ImportReport, Rejects

Progress = Callable[[int], None]
LaneBatch = tuple[int, Staged]  # a staged batch and the lane that writes it


class UsersImport:
    """One users file into one workspace; `run` fills the report. `route` picks a user's
    lane (the same for every call of the user) from a hash of the user id. A file of at
    least `parallel_from` bytes is checked by `processes` child processes
    (`check_processes`), each its share of the users, while this one writes."""

    route: Callable[[str], int] = staticmethod(user_hash)
    parallel_from = 8 << 20  # bytes: a smaller file is checked faster than processes start
    default_processes = 1

    def __init__(
        self,
        store: Store,
        ws: int,
        fmt: str,
        now: float,
        skip_invalid: bool,
        *,
        batch_size: int | None = None,
        processes: int | None = None,
    ) -> None:
        self.store, self.ws, self.fmt, self.now = store, ws, fmt, now
        self.skip_invalid = skip_invalid
        self.batch_size = batch_size or store.batch_size
        self.processes = processes or self.default_processes
        self.validator = self._validator()
        self.imported = 0  # calls handed to the lanes

    def _validator(self) -> Validator:
        known = self.store.attribute_types(self.ws)
        return Validator(known, now=self.now, text_values=self.fmt == "csv")

    def run(
        self, path: Path, report: ImportReport, rejects: Rejects, progress: Progress | None
    ) -> None:
        processes = self.processes if path.stat().st_size >= self.parallel_from else 1
        if processes > 1:
            try:
                self._run(path, report, rejects, progress, processes)
                return
            except TypesDisagree:  # rare: checked again in one process, which says where
                report.problems.clear()
                self.imported = 0
                self.validator = self._validator()
        self._run(path, report, rejects, progress, 1)

    def _run(
        self,
        path: Path,
        report: ImportReport,
        rejects: Rejects,
        progress: Progress | None,
        processes: int,
    ) -> None:
        target = UserImport(self.store, self.ws, self.now)
        written = [0] * target.lanes

        def write(batch: LaneBatch) -> None:
            lane, staged = batch
            written[lane] += target.write(lane, staged)

        try:
            with no_cyclic_gc(), ExitStack() as stack:
                # One thread a lane, a batch queued at most: memory stays flat.
                writers = [
                    stack.enter_context(
                        BackgroundWriter[LaneBatch](write, depth=1, name=f"drumbeat-lane-{lane}")
                    )
                    for lane in range(target.lanes)
                ]
                if processes > 1:
                    outcome = self._check_in_processes(path, writers, progress, processes)
                    self._take(outcome, report, rejects)
                else:
                    self._check(path, report, rejects, writers, progress)
            if report.problems and not self.skip_invalid:
                what = f"users file {path} (nothing was imported)"
                raise InvalidInput(report.problems, what=what)
            target.commit(self.validator.new_types)
            report.imported, report.written = self.imported, sum(written)
            report.check_processes = processes
        finally:
            target.close()

    def _check_in_processes(
        self,
        path: Path,
        writers: list[BackgroundWriter[LaneBatch]],
        progress: Progress | None,
        processes: int,
    ) -> Outcome:
        """Check the file in `processes` child processes, each its share of the users, their
        batches spread over the lanes; raises TypesDisagree if they fixed an attribute's type
        differently (each saw only its share: the file disagrees with itself)."""
        lanes = len(writers)

        def put(share: int, staged: Staged) -> None:
            writers[share % lanes].put((share % lanes, staged))

        command = CheckCommand(
            str(path), self.fmt, self.validator.types, self.now, self.batch_size, self.skip_invalid
        )
        return check_in_processes(command, processes, put, progress)

    def _take(self, outcome: Outcome, report: ImportReport, rejects: Rejects) -> None:
        """What the check processes found, as `_check` would have kept it."""
        self.imported = outcome.calls
        self.validator.new_types = outcome.new_types
        report.problems.extend(outcome.problems)
        if self.skip_invalid:
            report.rejected += len(outcome.rejects)
            for raw in outcome.rejects:
                rejects.write_bytes(raw)

    def _check(
        self,
        path: Path,
        report: ImportReport,
        rejects: Rejects,
        writers: list[BackgroundWriter[LaneBatch]],
        progress: Progress | None,
    ) -> None:
        """Check the file in this process, handing batches to the lanes as they are cut."""
        skip_invalid, problems = self.skip_invalid, report.problems

        def bad(number: int, raw: bytes, found: list[Problem]) -> None:
            problems.extend(found)
            if skip_invalid:
                report.rejected += 1
                rejects.write_bytes(raw)

        done = 0  # bytes of the file told to `progress`
        for batch, read in check_file(
            path,
            self.fmt,
            self.validator,
            size=self.batch_size,
            lanes=len(writers),
            route=type(self).route,
            skip_invalid=skip_invalid,
            bad=bad,
        ):
            if batch is not None:
                self.imported += batch.size
                writers[batch.lane].put((batch.lane, stage(batch.rows, self.now)))
            if progress is not None and read > done:
                progress(read - done)
                done = read
