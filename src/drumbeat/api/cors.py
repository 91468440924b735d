"""CORS for a web app that calls the API from the browser (the in-app inbox):
`DRUMBEAT_CORS_ORIGINS` lists the origins allowed; none by default, so no page of another
origin can read any answer. Credentials are headers (a key or an inbox token), never
cookies, so `Access-Control-Allow-Credentials` is not sent."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from drumbeat.config import Settings

MAX_AGE = 600  # seconds a browser may keep a preflight's answer


def install(app: FastAPI, config: Settings) -> None:
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
            expose_headers=["Retry-After"],
            max_age=MAX_AGE,
        )
