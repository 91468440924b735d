"""Worker processes: the local executor's `drain`, in N child processes, so that a tick uses
every core (threads in one process share one core: the GIL).

Each child is `python -m drumbeat.pipeline.executors.child`, started once and kept for the
executor's life. It talks JSON lines over its stdin and stdout: the parent writes
`{"lane": …, "now": …}` to every child, each drains the lane (claiming batches from the
store, lease + fence, like any worker) and answers with its batch reports and the query
timings it measured. Nothing is pickled, and the database URL travels in the child's
environment, not on its command line. A child that dies loses nothing: its batch is
claimed again when the lease runs out; the parent starts a new child at the next drain.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import asdict
from typing import IO, Any

import orjson

from drumbeat import metrics
from drumbeat.pipeline.worker import BatchReport


class WorkerDied(RuntimeError):
    """A worker process failed or exited during a drain (its batch will be claimed again)."""


class ProcessExecutor:
    """`processes` worker processes on the store at `url`."""

    def __init__(self, url: str, *, processes: int, batch_size: int) -> None:
        self.url = url
        self.processes = processes
        self.batch_size = batch_size
        self._children: list[subprocess.Popen[bytes]] = []

    def drain(self, lane: str, now: float) -> list[BatchReport]:
        """Every child drains `lane` at `now`; returns when all of them found it empty."""
        children = self._running()
        command = orjson.dumps({"lane": lane, "now": now}) + b"\n"
        for child in children:
            with contextlib.suppress(BrokenPipeError):  # it died: its empty answer says so
                _pipe(child.stdin).write(command)
                _pipe(child.stdin).flush()
        reports: list[BatchReport] = []
        failures: list[str] = []
        for number, child in enumerate(children):
            line = _pipe(child.stdout).readline()
            if not line:
                child.wait()
                failures.append(f"worker process {number} exited with code {child.returncode}")
                continue
            answer = orjson.loads(line)
            if "error" in answer:
                failures.append(f"worker process {number}: {answer['error']}")
                continue
            reports.extend(BatchReport(**report) for report in answer["reports"])
            metrics.merge(answer["metrics"])
        if failures:
            raise WorkerDied("; ".join(failures))
        return reports

    def close(self) -> None:
        for child in self._children:
            with contextlib.suppress(BrokenPipeError):  # it died with input unread
                _pipe(child.stdin).close()  # end of input: the child exits
        for child in self._children:
            _reap(child)
        self._children = []

    def _running(self) -> list[subprocess.Popen[bytes]]:
        """The children, with any that exited replaced by a new one."""
        for child in self._children:
            if child.poll() is not None:
                _reap(child)
        self._children = [c if c.poll() is None else self._start() for c in self._children]
        while len(self._children) < self.processes:
            self._children.append(self._start())
        return self._children

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["DRUMBEAT_DATABASE_URL"] = self.url
        env["DRUMBEAT_BATCH_SIZE"] = str(self.batch_size)
        return subprocess.Popen(
            [sys.executable, "-m", "drumbeat.pipeline.executors.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _reap(child: subprocess.Popen[bytes]) -> None:
    """Wait for a child that was told to stop (or died), and close our ends of its pipes."""
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    for stream in (child.stdin, child.stdout):
        if stream is not None and not stream.closed:
            with contextlib.suppress(BrokenPipeError):  # it died with input unread
                stream.close()


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    assert stream is not None  # every child is started with both pipes
    return stream


def report_line(reports: list[BatchReport]) -> bytes:
    """The child's answer to one drain: its reports and the timings it measured since."""
    answer: dict[str, Any] = {
        "reports": [asdict(report) for report in reports],
        "metrics": metrics.export(),
    }
    return orjson.dumps(answer) + b"\n"
