"""The `drumbeat` command. Thin: every command calls the Python API or a pipeline piece."""

from __future__ import annotations

import sys

from drumbeat.cli.app import app
from drumbeat.errors import DrumbeatError


def main() -> None:
    try:
        app(standalone_mode=False)
    except DrumbeatError as exc:
        from drumbeat.cli.output import console_err

        console_err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(2)
    except Exception as exc:  # click's usage errors and aborts arrive here without standalone
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


__all__ = ["app", "main"]
