"""The options several benchmarks take, defined once."""

from pathlib import Path
from typing import Annotated

import typer

UsersOpt = Annotated[int, typer.Option(min=100, help="How many synthetic users")]
PostgresOpt = Annotated[
    str | None,
    typer.Option(
        help="A PostgreSQL server (URL of a database on it) where the benchmark creates and"
        " drops fresh databases (also measured when given)"
    ),
]
SqliteOpt = Annotated[
    Path | None, typer.Option(help="Folder for the SQLite file (default: a temporary one)")
]
WriteOpt = Annotated[
    Path | None, typer.Option(help="Write the figures into this Markdown file (e.g. BENCHMARKS.md)")
]
