"""What `drumbeat batches` and `drumbeat outbox` share: a group whose bare call lists and
whose `retry` puts dead rows back, and how both print."""

from collections.abc import Sequence

import typer

from drumbeat.cli.output import console

ERROR_WIDTH = 60  # characters of an error a table shows; JSON lines carry it whole
SHOWN_IDS = 20  # ids a retry's summary names; more are counted


def listing_only(ctx: typer.Context, group: str) -> None:
    """Refuse the listing's options given before a sub-command (`GROUP --status dead
    retry …`), which would do nothing."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    given = [name for name, source in sources.items() if source and source.name != "DEFAULT"]
    if given:
        from drumbeat.errors import InvalidInput

        options = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        command = f"{group} {ctx.invoked_subcommand}"
        raise InvalidInput(f"{options}: options of the listing, not of `{command}`")


def print_retried(nouns: str, ids: Sequence[int], dry_run: bool, next_step: str) -> None:
    """The retry's one-line summary: what was (or, `dry_run`, would be) put back."""
    if not ids:
        console().print(f"no dead {nouns} to retry")
        return
    listed = ", ".join(str(i) for i in ids[:SHOWN_IDS])
    if len(ids) > SHOWN_IDS:
        listed += f" and {len(ids) - SHOWN_IDS:,} more"
    if dry_run:
        console().print(f"would retry {len(ids):,} {nouns}: {listed} (nothing changed)")
    else:
        console().print(f"retried {len(ids):,} {nouns}: {listed}; {next_step}")


def clipped(error: str | None) -> str | None:
    """The error on one line, cut to ERROR_WIDTH characters."""
    if error is None:
        return None
    line = " ".join(error.split())
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 1] + "…"
