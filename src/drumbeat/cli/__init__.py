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
        from rich.markup import escape

        from drumbeat.cli.output import console_err

        # soft wrap: a line of the message stays one line, whatever the terminal's width;
        # escaped, or Rich takes `drumbeat[api]` or `steps[2]` in a message for markup
        console_err.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)


__all__ = ["app", "main"]
