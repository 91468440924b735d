"""Options more than one command takes, defined once."""

from typing import Annotated

import typer

MetricsPort = Annotated[
    int | None,
    typer.Option(min=1, max=65535, help="Serve Prometheus /metrics on this port"),
]
MetricsHost = Annotated[str, typer.Option(help="Address /metrics listens on (with --metrics-port)")]
