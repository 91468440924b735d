"""The `drumbeat` command. Thin: every command calls the Python API or a pipeline piece."""

from __future__ import annotations

import sys

from drumbeat.cli.app import app
from drumbeat.errors import DrumbeatError


def main() -> None:
    """Run the CLI; a refused input prints what and where, and exits with status 2."""
    try:
        app()
    except DrumbeatError as exc:
        from drumbeat.cli.output import console_err

        console_err().print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


__all__ = ["app", "main"]
