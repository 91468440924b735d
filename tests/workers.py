"""`drumbeat worker` processes (the distributed shape's Celery workers) started by a test,
each in a process group of its own, output to a log file; all of them killed at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

DRUMBEAT = str(Path(sys.executable).parent / "drumbeat")


class Workers:
    """The workers of a test: `start(lane)` one more, `kill(process)` one."""

    def __init__(self, env: Mapping[str, str], logs: Path) -> None:
        self.env = dict(env)
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.started = 0

    def start(self, lane: str, *, concurrency: int = 1) -> subprocess.Popen[bytes]:
        self.started += 1
        log = self.logs / f"worker-{lane}-{self.started}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [DRUMBEAT, "worker", "--lane", lane, "--concurrency", str(concurrency)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append((lane, process))
        return process

    def kill(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal the worker's whole group (its pool's processes too) and reap it."""
        with suppress(ProcessLookupError):  # it died already
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.running = [(lane, p) for lane, p in self.running if p is not process]

    def close(self) -> None:
        for _, process in list(self.running):
            self.kill(process)


def worker_env(
    database_url: str, broker_url: str, outbox_file: Path, **settings: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    env |= {
        "DRUMBEAT_DATABASE_URL": database_url,
        "DRUMBEAT_BROKER_URL": broker_url,
        "DRUMBEAT_OUTBOX_FILE": str(outbox_file),
    }
    env |= {f"DRUMBEAT_{name.upper()}": value for name, value in settings.items()}
    return env


@contextmanager
def workers(env: Mapping[str, str], logs: Path, lanes: Mapping[str, int]) -> Iterator[Workers]:
    """`lanes[lane]` workers of each lane, for the length of the block."""
    pool = Workers(env, logs)
    try:
        for lane, n in lanes.items():
            for _ in range(n):
                pool.start(lane)
        yield pool
    finally:
        pool.close()
