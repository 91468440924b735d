"""Consoles and the small printing helpers every command shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from drumbeat.choices import Format

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


@cache
def console() -> Console:
    """Standard output's console, made on first use: `--help` need not import Rich."""
    from rich.console import Console

    return Console(highlight=False)


@cache
def console_err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    from rich.table import Table

    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


def print_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    fmt: str = Format.TABLE,
    title: str | None = None,
) -> None:
    """Rows as a Rich table, or as JSON lines (one object per row) for scripts."""
    if fmt == Format.JSONL:
        import orjson

        out = console().file
        for row in rows:
            out.write(orjson.dumps(dict(zip(columns, row, strict=True))).decode() + "\n")
        return
    console().print(table(title, columns, rows))


def counts(by_name: Mapping[str, int], nothing: str = "none") -> str:
    """`{'sent': 2, 'failed': 1}` as `2 sent, 1 failed`, largest first."""
    ranked = sorted(by_name.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{n:,} {name}" for name, n in ranked) or nothing


def when(stamp: float | None) -> str | None:
    """Epoch seconds as ISO-8601 (UTC), None as None."""
    from drumbeat.model.attributes import format_timestamp

    return format_timestamp(stamp) if stamp is not None else None
