"""Worker processes: the local executor's `drain`, in N child processes, so that a tick uses
every core (threads in one process share one core: the GIL).

Each child is `python -m drumbeat.pipeline.executors.child`, started once and kept for the
executor's life. It talks JSON lines over its stdin and stdout: the parent writes
`{"lane": …, "now": …}` to every child, each drains the lane (claiming batches from the
store, lease + fence, like any worker) and answers with its batch reports and the query
timings it measured. Nothing is pickled, and the database URL travels in the child's
environment, not on its command line. A child that dies loses nothing: the parent lets go
of the batch it held at once (its claims carry the child's pid, `Store.release_batches`),
starts a new child and has it drain again; a batch that kills every child that takes it
ends dead after BATCH_ATTEMPTS claims (`store/batch_claims.py`), and the drain goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from typing import IO, Any

import orjson
from sqlalchemy.exc import SQLAlchemyError

from drumbeat import metrics
from drumbeat.errors import BadSetting, DrumbeatError
from drumbeat.pipeline.lane_gate import LaneGate
from drumbeat.pipeline.worker import BatchReport
from drumbeat.store import Store, open_store
from drumbeat.store.core import DB_RETRY_SECONDS
from drumbeat.store.owners import process_owner

log = logging.getLogger(__name__)


class WorkerDied(DrumbeatError, RuntimeError):
    """A worker process kept failing or dying during a drain without holding a batch to
    blame (it cannot open the store, say)."""


# Times a worker process may fail or die holding no batch, in one drain, before the drain
# gives up: such a failure is not a batch's, so no batch ends dead to stop it.
RESTARTS = 3


class ProcessExecutor:
    """`processes` worker processes on the store at `url`; with a `gate` (a slow lane's
    workers), in the background: each batch waits for the gate, and they give way to
    others for the CPU and SQLite's write lock (`child`)."""

    def __init__(
        self,
        url: str,
        *,
        processes: int,
        batch_size: int,
        retry_seconds: float = DB_RETRY_SECONDS,
        gate: LaneGate | None = None,
    ) -> None:
        self.url = url
        self.gate = gate
        self.processes = processes
        self.batch_size = batch_size
        self.retry_seconds = retry_seconds
        self._children: list[subprocess.Popen[bytes]] = []
        self._store: Store | None = None  # opened to release a dead child's batch

    def drain(self, lane: str, now: float) -> list[BatchReport]:
        """Every child drains `lane` at `now`; returns when all of them found it empty.
        A child that dies or fails holding a batch lets go of it at once (`_release`) and
        a new child (or the same, if it lives) drains again: its batch runs at once, or
        ends dead after BATCH_ATTEMPTS claims."""
        command = orjson.dumps({"lane": lane, "now": now}) + b"\n"
        for child in self._running():
            _send(child, command)
        reports: list[BatchReport] = []
        failures: list[str] = []
        for number in range(len(self._children)):
            answer = self._answer(number, command)
            if isinstance(answer, str):
                failures.append(answer)
                continue
            reports.extend(BatchReport(**report) for report in answer["reports"])
            metrics.merge(answer["metrics"])
        if failures:
            raise WorkerDied("; ".join(failures))
        return reports

    def _answer(self, number: int, command: bytes) -> dict[str, Any] | str:
        """Child `number`'s answer to `command`, asked again of it (or of the child that
        replaces it) after each failure or death that let go of a batch; or what went wrong
        when failures hold no batch RESTARTS times in a row."""
        restarts = 0
        while True:
            child = self._children[number]
            line = _pipe(child.stdout).readline()
            if line:
                answer: dict[str, Any] = orjson.loads(line)
                if "error" not in answer:
                    return answer
                why = f"worker process {number}: {answer['error']}"
            else:
                why = f"worker process {number} exited with code {_exit_code(child)}"
            released = self._release(child.pid, why)
            if not line:
                _reap(child)
                self._children[number] = child = self._start()
            if not released:
                restarts += 1
                if restarts > RESTARTS:
                    return why
            log.warning("%s; it let go of %s", why, _listed(released) or "no batch")
            _send(child, command)

    def _release(self, pid: int, why: str) -> dict[int, str]:
        """The batches the process `pid` held, back to pending (or dead) at once: it is
        known to be gone or to have given up on them, so waiting for the lease is waste."""
        try:
            if self._store is None:
                self._store = open_store(self.url, migrate=False, retry_seconds=self.retry_seconds)
            return self._store.release_batches(process_owner(pid), why)
        except (SQLAlchemyError, OSError, BadSetting) as exc:  # a store none can open holds none
            log.warning("cannot release the batches of worker process %s: %s", pid, exc)
            return {}

    def close(self) -> None:
        for child in self._children:
            with contextlib.suppress(BrokenPipeError):  # it died with input unread
                _pipe(child.stdin).close()  # end of input: the child exits
        for child in self._children:
            _reap(child)
        self._children = []
        if self._store is not None:
            self._store.close()
            self._store = None

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
        env["DRUMBEAT_DB_RETRY_SECONDS"] = str(self.retry_seconds)
        return subprocess.Popen(
            [sys.executable, "-m", "drumbeat.pipeline.executors.child"]
            + (["--background", self.gate.path] if self.gate is not None else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _send(child: subprocess.Popen[bytes], command: bytes) -> None:
    with contextlib.suppress(BrokenPipeError):  # it died: its empty answer says so
        _pipe(child.stdin).write(command)
        _pipe(child.stdin).flush()


def _listed(released: dict[int, str]) -> str:
    return ", ".join(f"batch {batch_id} ({status})" for batch_id, status in released.items())


def _exit_code(child: subprocess.Popen[bytes]) -> int:
    """The exit code of a child whose output ended (as `Popen.returncode` gives it: minus
    the signal that killed it), once it has exited, leaving it unreaped: until the batch it
    held is let go of (`_release`, counted), its siblings, whose drains let go of the
    batches of gone processes (`release_orphaned_batches`, not counted), see it as their
    parent's zombie, not gone (`owners._ended`), and leave that batch to us."""
    if child.returncode is not None:  # reaped already
        return child.returncode
    ended = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert ended is not None  # WEXITED without WNOHANG waits for the exit
    if ended.si_code == os.CLD_EXITED:
        return ended.si_status
    return -ended.si_status  # killed by a signal (CLD_KILLED, CLD_DUMPED)


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
