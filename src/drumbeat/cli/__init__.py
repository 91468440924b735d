"""The `drumbeat` command. Thin: every command calls the Python API or a pipeline piece."""

from __future__ import annotations

import gc
import sys

from drumbeat.cli.app import app
from drumbeat.errors import DrumbeatError


def main() -> None:
    """Run the CLI; a refused input prints what and where, and exits with status 2."""
    try:
        app()
    except DrumbeatError as exc:
        from rich.text import Text

        from drumbeat.cli.output import console_err

        # The message as it is (no markup read in it), a line unwrapped however narrow the
        # terminal: scripts and logs read it whole.
        console_err().print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)
        sys.exit(2)
    finally:
        # The command is done: the collection Python makes at exit need not walk every
        # object alive (~0.1 s of each command's CPU). What holds an OS resource is closed
        # at exit (the store: `State.client`; files: where they are written).
        gc.freeze()


__all__ = ["app", "main"]
