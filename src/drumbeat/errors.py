"""Errors that reach users: each says what is wrong and where (line, field, path)."""

from __future__ import annotations

from dataclasses import dataclass


class DrumbeatError(Exception):
    """Base of every error Drumbeat raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, and where: a path such as `steps[2].wait` or `line 12`."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InvalidInput(DrumbeatError):
    """Input refused as a whole; nothing was written. `problems` lists every one found."""

    def __init__(self, problems: list[Problem] | Problem | str, *, what: str = "input") -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        self.what = what
        if len(problems) == 1:  # one problem, one line
            super().__init__(f"invalid {what}: {problems[0]}")
            return
        lines = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"invalid {what}:\n{lines}{more}")


class BadSetting(DrumbeatError):
    """A setting that cannot work, such as a database URL that does not connect: one line
    naming its environment variable and why."""

    def __init__(self, variable: str, reason: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {reason}")


class MissingExtra(DrumbeatError):
    """An optional part was asked for without its extra installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'drumbeat[{extra}]'")


def require(module: str, *, feature: str, extra: str) -> object:
    """Import an optional dependency lazily, or say which extra brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(feature, extra) from exc
