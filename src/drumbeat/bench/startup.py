"""`drumbeat bench startup`: how long a command takes to start, as a user runs it (a new
process each time). The floor is the same interpreter starting and doing nothing
(`python -c pass`), timed in the same run, alternating with the commands, so the machine's
load weighs on both alike. The figure is the median wall time of N runs, and the CPU time
the runs used (user + system, from the children's rusage: steadier than wall time on a
shared machine)."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drumbeat.bench.report import Figure

COMMANDS: tuple[tuple[str, ...], ...] = (("--help",), ("--version",), ("clock",), ("stats",))
TARGETS = {"--help": "< 300 ms", "--version": "< 300 ms", "clock": "≤ 400 ms", "stats": "≤ 400 ms"}


def drumbeat_argv() -> list[str]:
    """The installed command beside this interpreter, else `python -m drumbeat`."""
    script = Path(sys.executable).with_name("drumbeat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "drumbeat"]


def _timed(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one run of `argv`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run(runs: int) -> list[Figure]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    floor_argv = [sys.executable, "-c", "pass"]
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [*drumbeat_argv(), "clock"], cwd=folder, env=env, check=True, capture_output=True
        )
        floor: list[tuple[float, float]] = []
        timings: dict[tuple[str, ...], list[tuple[float, float]]] = {c: [] for c in COMMANDS}
        for _ in range(runs):
            for command in COMMANDS:
                floor.append(_timed(floor_argv, folder, env))
                timings[command].append(_timed([*drumbeat_argv(), *command], folder, env))
    floor_wall = statistics.median(w for w, _ in floor) * 1000
    floor_cpu = statistics.median(c for _, c in floor) * 1000
    figures = []
    for command, times in timings.items():
        name = " ".join(command)
        wall = statistics.median(w for w, _ in times) * 1000
        cpu = statistics.median(c for _, c in times) * 1000
        figures.append(
            Figure(
                f"drumbeat {name}: wall, median of {runs}",
                wall,
                "ms",
                floor_wall,
                TARGETS.get(name, ""),
            )
        )
        figures.append(Figure(f"drumbeat {name}: CPU, median of {runs}", cpu, "ms", floor_cpu))
    return figures
