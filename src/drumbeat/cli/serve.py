"""`drumbeat serve`: the HTTP API on uvicorn (extra `drumbeat[api]`)."""

import os
from typing import Annotated

import typer

from drumbeat.cli.context import state


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes", min=1)] = 1,
) -> None:
    """Serve the HTTP API: Segment-compatible tracking, /healthz, /readyz, /openapi.json."""
    from drumbeat.errors import InvalidInput, Problem, require

    if state(ctx).workspace is not None:  # it would do nothing: refused, not ignored
        why = "each request's key names its workspace; serve takes no --workspace"
        raise InvalidInput(Problem("--workspace", why))
    require("fastapi", feature="drumbeat serve", extra="api")
    uvicorn = require("uvicorn", feature="drumbeat serve", extra="api")
    from drumbeat.store import open_store

    config = state(ctx).settings()
    open_store(config.database_url).close()  # migrate once, and refuse a bad store up front
    # Each worker builds its app from the settings: hand them the ones given on this line.
    os.environ["DRUMBEAT_DATABASE_URL"] = config.database_url
    os.environ["DRUMBEAT_BATCH_SIZE"] = str(config.batch_size)
    uvicorn.run(  # type: ignore[attr-defined]
        "drumbeat.api.app:create_app", factory=True, host=host, port=port, workers=workers
    )
