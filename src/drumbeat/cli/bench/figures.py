"""How a benchmark's figures are shown (and written into a Markdown file), and measured on
both stores."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from drumbeat.cli.output import console, table

if TYPE_CHECKING:
    from drumbeat.bench.report import Figure


def show(name: str, figures: "list[Figure]", write: Path | None, notes: str = "") -> None:
    from drumbeat.bench import report

    rows = [(f.what, *f.cells(), f.ratio(), f.target) for f in figures]
    console().print(table(name, ("what", "Drumbeat", "raw floor", "ratio", "target"), rows))
    if write is not None:
        report.write_section(
            write, name, report.markdown(name, report.command_line(), figures, notes)
        )
        console().print(f"written to {write}")


def on_both_stores(
    measure: "Callable[[str], list[Figure]]", sqlite: Path | None, postgres: str | None
) -> "list[Figure]":
    """`measure(url)` on a fresh SQLite file (in `sqlite`, or a temporary folder), then on
    a fresh database on the PostgreSQL server given, if any: the figures of both."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=sqlite) as folder:
        figures = measure(f"sqlite:///{folder}/bench.db")
    with scratch(postgres) as url:
        return figures + (measure(url) if url else [])


@contextmanager
def scratch(postgres: str | None) -> Iterator[str | None]:
    """A fresh database on the server of `postgres` (None if none is given) for a
    benchmark's users, campaigns and queued messages, dropped at the end: the database the
    URL names is left as it was (a production `drumbeat run` on it would send what a
    benchmark left queued)."""
    if postgres is None:
        yield None
        return
    from drumbeat.bench.databases import fresh_database

    with fresh_database(postgres, "bench") as url:
        yield url
