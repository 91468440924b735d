"""What the management endpoints share: the admin key, a client of the key's workspace,
errors as JSON naming the field at fault, and opaque cursors for keyset pages.

Every error body is `{"detail": …, "problems": [{"path": …, "message": …}]}`: bad input
is 400 (a query parameter's or body field's path, `limit` or `steps[2].wait`), an unknown
campaign, user or batch of the key's workspace 404 (another workspace's are unknown too),
a change the current state refuses 409.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from drumbeat.api.auth import write_key
from drumbeat.client import Drumbeat
from drumbeat.errors import InvalidInput, Problem
from drumbeat.pipeline.clock import store_now
from drumbeat.store.keys import ApiKey

NUL = "\x00"
MAX_ID = 2**63 - 1  # ids are 64-bit: a larger one is no row's, and no database takes it


class ApiProblem(BaseModel):
    path: str
    message: str


class ErrorBody(BaseModel):
    detail: str
    problems: list[ApiProblem] = []


class ApiError(Exception):
    """An error answered with `status` and the problem at `path`."""

    def __init__(self, status: int, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.status, self.problem = status, Problem(path, message)


def not_found(path: str, message: str) -> ApiError:
    return ApiError(404, path, message)


def conflict(path: str, message: str) -> ApiError:
    return ApiError(409, path, message)


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input: each problem at its path"},
    401: {"model": ErrorBody, "description": "No key, an unknown key or a revoked key"},
    403: {"model": ErrorBody, "description": "A write key: this endpoint needs an admin key"},
    404: {"model": ErrorBody, "description": "No such thing in the key's workspace"},
    409: {"model": ErrorBody, "description": "Refused in the current state"},
}


def _body(status: int, detail: str, problems: list[Problem]) -> JSONResponse:
    listed = [{"path": p.where, "message": p.message} for p in problems]
    return JSONResponse({"detail": detail, "problems": listed}, status)


def _field(location: tuple[Any, ...]) -> str:
    """`limit` for ("query", "limit"); `steps[2].wait` for ("body", "steps", 2, "wait")."""
    parts = location[1:] if location and location[0] in ("query", "path", "body") else location
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


class AdminRoute(APIRoute):
    """A route whose errors are answered as the module says (FastAPI's own answer to a bad
    parameter is a 422 in another shape)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            given = [*request.path_params.items(), *request.query_params.multi_items()]
            nul = [Problem(name, "contains a NUL character") for name, v in given if NUL in v]
            if nul:  # no database stores one in text, PostgreSQL refuses it outright
                return _body(400, "invalid request", nul)
            try:
                return await handle(request)
            except RequestValidationError as exc:
                problems = [Problem(_field(e["loc"]), e["msg"]) for e in exc.errors()]
                return _body(400, "invalid request", problems)
            except InvalidInput as exc:
                return _body(400, str(exc).splitlines()[0].rstrip(":"), exc.problems)
            except ApiError as exc:
                return _body(exc.status, str(exc), [exc.problem])

        return route


async def admin_key(request: Request) -> ApiKey:
    """A live admin key, or 401 (none, unknown, revoked) or 403 (a write key)."""
    key = await write_key(request)
    if key.scope != "admin":
        raise HTTPException(403, "this endpoint needs an admin key; a write key only sends data")
    return key


def workspace(request: Request, key: ApiKey = Depends(admin_key)) -> Drumbeat:
    """The Python API on the key's workspace, on the server's store and its clock."""
    store = request.app.state.store
    return Drumbeat.attached(
        store, key.workspace_id, request.app.state.config, lambda: store_now(store)
    )


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"after": last_id})).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id a page ends at, from the cursor its answer gave; 400 for any other text."""
    if cursor is None:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        value = None
    after = value.get("after") if isinstance(value, dict) else None
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_ID:
        raise ApiError(400, "cursor", "not a cursor this API gave (pass next_cursor as is)")
    return after


def next_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor of the page after one of `limit` rows fetched as `limit + 1`."""
    return encode_cursor(ids[limit - 1]) if len(ids) > limit else None
