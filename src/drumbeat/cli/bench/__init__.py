"""`drumbeat bench …`: the benchmarks, with figures written to BENCHMARKS.md. A module per
kind of work measured; each command imports its benchmark (`drumbeat.bench`) when it runs."""

import typer

from drumbeat.cli.bench import data_in, programs, sending, ticks

app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Measure Drumbeat against raw floors."
)

app.command("store")(data_in.store)
app.command("engine")(ticks.engine)
app.command("demo")(programs.demo)
app.command("startup")(programs.startup)
app.command("dispatch")(sending.dispatch)
app.command("event")(data_in.event)
app.command("access")(ticks.access)
app.command("api")(data_in.api)
app.command("limiter")(sending.limiter)
app.command("idle")(ticks.idle)
app.command("changed")(ticks.changed)
app.command("capacity")(ticks.capacity)
app.command("lanes")(ticks.lanes)
app.command("pipeline")(ticks.pipeline)
app.command("workers")(sending.workers)
app.command("loader")(data_in.loader)
