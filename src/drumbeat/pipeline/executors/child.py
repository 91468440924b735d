"""A worker process of `ProcessExecutor` (`python -m drumbeat.pipeline.executors.child`).

Reads one JSON command per line on stdin (`{"lane": …, "now": …}`), drains that lane on
the store named by DRUMBEAT_DATABASE_URL, and answers one JSON line on stdout. Exits at the
end of its input. Its own logs go to stderr, which it shares with the parent.

Started with `--background GATE` (a slow lane's worker), it gives way to the fast lane on
a shared machine: each batch waits for the lane gate at GATE (`lane_gate.py`: closed while
the fast lane drains), it runs at a lower CPU priority (nice BACKGROUND_NICE) and, on a
SQLite file, takes the write lock only when no other writer waits for it.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable

import orjson

from drumbeat import metrics
from drumbeat.config import Settings
from drumbeat.cyclic_gc import freeze_startup
from drumbeat.logs import configure as configure_logs
from drumbeat.pipeline.executors.local import drain
from drumbeat.pipeline.executors.processes import report_line
from drumbeat.pipeline.lane_gate import LaneGate
from drumbeat.pipeline.programs import Programs
from drumbeat.store import open_configured

BACKGROUND_NICE = 10


def main() -> None:
    # Ctrl-C reaches the whole process group, and a service manager may send SIGTERM to
    # every process: the parent stops after the tick under way, then ends its children by
    # closing their input, so a child's drain is never cut short by them.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    settings = Settings()
    configure_logs(settings.log_format, settings.log_level)
    metrics.record_for_store(True)  # handed to the parent with each answer, which writes them
    store = open_configured(settings, migrate=False)
    gate = _gate(sys.argv[1:])
    if gate is not None:
        os.nice(BACKGROUND_NICE)
        store.writes_give_way = True
    programs = Programs(store)
    freeze_startup()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        command = orjson.loads(line)
        try:
            # campaigns may have changed since the last drain
            store.retrying(programs.refresh, "reading the campaigns")
            now = _fixed(float(command["now"]))
            reports = drain(store, programs, command["lane"], now, gate=gate)
            answer = report_line(reports)
        except Exception as exc:  # the parent lets go of the batch it held, and asks again
            traceback.print_exc()
            answer = orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}) + b"\n"
        metrics.reset()
        out.write(answer)
        out.flush()
    store.close()


def _gate(arguments: list[str]) -> LaneGate | None:
    """The lane gate `--background GATE` names, if given."""
    if arguments[:1] == ["--background"]:
        return LaneGate(arguments[1])
    return None


def _fixed(now: float) -> Callable[[], float]:
    return lambda: now


if __name__ == "__main__":
    main()
