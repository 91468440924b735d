"""Consoles and the small printing helpers every command shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
console_err = Console(stderr=True, highlight=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


def print_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str, title: str | None = None
) -> None:
    """Rows as a Rich table, or as JSON lines (one object per row) for scripts."""
    if fmt == "jsonl":
        out = console.file
        for row in rows:
            out.write(orjson.dumps(dict(zip(columns, row, strict=True))).decode() + "\n")
        return
    console.print(table(title, columns, rows))
