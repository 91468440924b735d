"""`drumbeat audience count|sample RULE_FILE`: preview who a rule selects, by SQL pushdown."""

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from drumbeat.choices import Format
from drumbeat.cli.context import state
from drumbeat.cli.output import console, print_rows, when

app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Preview an audience rule against the store."
)
RuleArg = Annotated[Path, typer.Argument(help="A YAML or JSON file holding one rule")]


@app.command("count")
def count(ctx: typer.Context, rule: RuleArg) -> None:
    """How many users the rule selects now."""
    client = state(ctx).client()
    start = time.perf_counter()
    total = client.audience_count(rule)
    console().print(f"{total:,} users match {rule} ({time.perf_counter() - start:.3f} s)")


@app.command("sample")
def sample(
    ctx: typer.Context,
    rule: RuleArg,
    n: Annotated[int, typer.Option("-n", min=1, help="How many users")] = 10,
    fmt: Annotated[Format, typer.Option("--format", help="Output format")] = Format.TABLE,
) -> None:
    """The first N matching users (by id), with their attributes."""
    client = state(ctx).client()
    types = client.store.attribute_types(client.ws)
    rows = []
    for user in client.audience_sample(rule, n):
        shown = {
            name: when(value)
            if types.get(name) == "timestamp" and isinstance(value, int | float)
            else value
            for name, value in sorted(user.attributes.items())
        }
        # an object for scripts; `plan=free, seats=3` for people
        attributes = (
            shown if fmt == Format.JSONL else ", ".join(f"{k}={v}" for k, v in shown.items())
        )
        rows.append((user.user_id, user.email, when(user.created_at), attributes))
    print_rows(("user_id", "email", "created_at", "attributes"), rows, fmt)


def _pairs(values: dict[str, Any]) -> str:
    """`plan=free, beta=true, seats=3`: strings as they are, other values as JSON."""
    import orjson

    return ", ".join(
        f"{k}={v if isinstance(v, str) else orjson.dumps(v).decode()}" for k, v in values.items()
    )
