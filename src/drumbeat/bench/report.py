"""Write a benchmark's figures into its own section of BENCHMARKS.md, replacing the last run."""

from __future__ import annotations

import platform
import resource
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    what: str
    value: float | None  # None: a row of the raw floor's alone
    unit: str
    floor: float | None = None  # the raw floor's figure, same unit
    target: str = ""

    def ratio(self) -> str:
        return f"{self.value / self.floor:.2f}×" if self.value is not None and self.floor else ""

    def cells(self) -> tuple[str, str]:
        """Drumbeat's figure and the raw floor's, as the table shows them ("—": none)."""
        return _amount(self.value, self.unit), _amount(self.floor, self.unit)


def _amount(value: float | None, unit: str) -> str:
    return f"{value:,.2f} {unit}" if value is not None else "—"


def peak_rss_mib() -> float:
    """Peak resident memory so far of the largest process of the run: this one, or a worker
    process it has waited for (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def markdown(name: str, command: str, figures: list[Figure], notes: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"<!-- bench:{name} -->",
        f"### `{name}`",
        "",
        f"Command: `{command}`  ",
        f"Run: {stamp}, Python {platform.python_version()}, {platform.machine()}, "
        f"{_cores()} cores, load average {_load()} at the end",
        "",
        "| what | Drumbeat | raw floor | Drumbeat / floor | target |",
        "|---|---:|---:|---:|---|",
    ]
    for f in figures:
        value, floor = f.cells()
        lines.append(f"| {f.what} | {value} | {floor} | {f.ratio()} | {f.target} |")
    if notes:
        lines += ["", notes]
    lines.append(f"<!-- /bench:{name} -->")
    return "\n".join(lines)


def _load() -> str:
    """The 1, 5 and 15 minute load averages (as `uptime` shows them)."""
    import os

    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the section of `name` in `path` (or append it), leaving the rest as it was."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        tail = rest.split(end, 1)[1]
        current = head + text + tail
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current, encoding="utf-8")


def command_line() -> str:
    return "drumbeat " + " ".join(sys.argv[1:])
