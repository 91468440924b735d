"""The Typer application: global options, then one sub-command module per area.

`drumbeat --help` imports every module named here: they import Typer, Rich and
`drumbeat.choices` only, and each command imports what it needs (SQLAlchemy, pydantic,
Jinja) when it runs. tests/e2e/test_cli_imports.py holds that. The command modules leave
out `from __future__ import annotations`: Typer then takes each parameter's annotation as
it is, where it would evaluate each string again, several times, at every start (a tenth
of a second of `drumbeat --help`)."""

from typing import Annotated

import typer

from drumbeat.cli import (
    audience,
    batches,
    bench,
    campaign,
    capacity,
    data,
    demo,
    explain,
    flow,
    inspect,
    keys,
    outbox,
    serve,
    stats,
    tokens,
    worker,
)
from drumbeat.cli.coercion import settle
from drumbeat.cli.context import State

settle()  # no pydantic for values that need no check (cli/coercion.py)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain Click help and errors: one line per error, `[env …]` hints shown as written, and
    # no Rich help renderer to import (a tenth of a second)
    rich_markup_mode=None,
    help="Drumbeat: campaigns that stay cheap from a thousand users to millions.",
)


def _version(given: bool) -> None:
    if given:
        from importlib.metadata import version

        typer.echo(f"drumbeat {version('drumbeat')}")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Store of record [env DRUMBEAT_DATABASE_URL, default sqlite:///./drumbeat.db]"
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Redis counting the rate limits of every process (only that, so far) "
            "[env DRUMBEAT_REDIS_URL, default: the store counts them]"
        ),
    ] = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            help="RabbitMQ of the distributed shape, amqp://… (docs/deploy.md) "
            "[env DRUMBEAT_BROKER_URL]"
        ),
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option(help="Workspace to act on [env DRUMBEAT_WORKSPACE, default 'default']"),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Users per batch and per bulk call [env DRUMBEAT_BATCH_SIZE, default 1000]"
        ),
    ] = None,
    _: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    ctx.obj = State(
        database_url=database_url,
        redis_url=redis_url,
        broker_url=broker_url,
        workspace=workspace,
        batch_size=batch_size,
    )


app.add_typer(data.import_app, name="import")
app.add_typer(data.attributes_app, name="attributes")
app.add_typer(data.db_app, name="db")
app.add_typer(audience.app, name="audience")
app.add_typer(campaign.app, name="campaign")
app.command("advance")(flow.advance)
app.command("run")(flow.run)
app.command("worker")(worker.worker)
app.command("clock")(flow.clock)
app.command("cap")(flow.cap)
app.add_typer(outbox.app, name="outbox")
app.command("members")(inspect.members)
app.command("inbox")(inspect.inbox)
app.command("inbox-token")(tokens.inbox_token)
app.command("stats")(stats.stats)
app.command("capacity")(capacity.capacity)
app.command("explain")(explain.explain)
app.add_typer(batches.app, name="batches")
app.command("demo")(demo.demo)
app.add_typer(bench.app, name="bench")
app.add_typer(keys.workspace_app, name="workspace")
app.add_typer(keys.key_app, name="key")
app.command("serve")(serve.serve)
