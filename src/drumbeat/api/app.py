"""The application factory: `create_app()` opens the store named by the settings (as
`drumbeat serve` passes them to each worker through the environment)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from drumbeat.api import (
    campaigns,
    cors,
    deliveries,
    inbox,
    operations,
    ratelimit,
    tracking,
    unsubscribe,
    users,
)
from drumbeat.api.write_group import WriteGroup
from drumbeat.config import settings
from drumbeat.errors import InvalidInput
from drumbeat.recent import Recent
from drumbeat.recorder import Recorder
from drumbeat.store import migrate, open_store
from drumbeat.store.keys import ApiKey


def create_app(database_url: str | None = None) -> FastAPI:
    config = settings(database_url=database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from drumbeat.cache import user_cache
        from drumbeat.ingest.held_types import HeldTypes
        from drumbeat.pipeline.events import EventPath

        app.state.store = open_store(
            config.database_url, batch_size=config.batch_size, cache=user_cache(config)
        )
        app.state.events = EventPath(app.state.store, max_users=config.event_path_users)
        group = None
        if app.state.store.dialect == "sqlite" and config.api_write_group > 1:
            group = WriteGroup(app.state.store, config.api_write_group)
        app.state.write_calls = group.write_calls if group else app.state.store.write_calls
        app.state.types = HeldTypes(app.state.store, config.api_key_cache_seconds)
        app.state.head = migrate.head()
        recorder = Recorder(
            app.state.store,
            every=config.stats_flush_seconds,
            keep=config.stats_keep_days * 86400,
        )
        try:
            yield
        finally:
            if group is not None:
                group.close()
            recorder.close()
            app.state.store.close()

    app = FastAPI(title="Drumbeat", version="0.1.0", lifespan=lifespan)
    app.state.config = config
    app.state.keys = Recent[str, ApiKey](config.api_key_cache_seconds)
    app.include_router(tracking.router)
    app.include_router(inbox.router)
    app.include_router(unsubscribe.router)
    app.include_router(campaigns.router)
    app.include_router(users.router)
    app.include_router(operations.router)
    app.include_router(deliveries.router)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["health"])
    app.add_exception_handler(InvalidInput, _invalid_input)
    ratelimit.install(app, config)
    cors.install(app, config)  # outermost: a 429 carries the CORS headers too
    return app


def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def readyz(request: Request) -> Any:
    """The store answers and its schema is at this version's migration head."""
    try:
        with request.app.state.store.engine.connect() as conn:
            revision = migrate.current(conn)
    except SQLAlchemyError as exc:
        return JSONResponse({"status": "store unreachable", "detail": str(exc)[:200]}, 503)
    if revision != request.app.state.head:
        detail = f"schema at {revision}, this version needs {request.app.state.head}"
        return JSONResponse({"status": "migrations pending", "detail": detail}, 503)
    return {"status": "ready", "revision": revision}


async def _invalid_input(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    problems = [{"path": p.where, "message": p.message} for p in exc.problems]
    return JSONResponse({"detail": str(exc).splitlines()[0], "problems": problems}, 400)
