"""Fault injection for worker processes, loaded by Python at start-up when tests/faults is on
PYTHONPATH (tests/e2e/test_faults.py, tests/contract/test_executors.py): a worker that stages
a batch holding the user DRUMBEAT_FAULT_USER sends itself the signal DRUMBEAT_FAULT_SIGNAL
(SIGKILL: it dies there; SIGSTOP: it stops, for the test to kill). With
DRUMBEAT_FAULT_ONCE (a path), only the first worker to get there does (it makes the file)."""

from __future__ import annotations

import os
import signal
from typing import Any


def _first(path: str | None) -> bool:
    if path is None:
        return True
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _install(user: str, signal_name: str, once: str | None) -> None:
    from drumbeat.pipeline import worker

    stage = worker.stage_batch

    def faulty_stage_batch(store: Any, program: Any, batch: Any, now: float) -> Any:
        if user in batch.user_ids and _first(once):
            os.kill(os.getpid(), getattr(signal, signal_name))
        return stage(store, program, batch, now)

    worker.stage_batch = faulty_stage_batch  # type: ignore[assignment]


if os.environ.get("DRUMBEAT_FAULT_USER"):
    _install(
        os.environ["DRUMBEAT_FAULT_USER"],
        os.environ.get("DRUMBEAT_FAULT_SIGNAL", "SIGKILL"),
        os.environ.get("DRUMBEAT_FAULT_ONCE"),
    )
