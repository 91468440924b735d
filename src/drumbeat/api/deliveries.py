"""`POST /v1/deliveries?workspace=NAME`: bounces and complaints from an email provider,
signed with the workspace's deliveries secret (`channels/deliveries.py`); a hard bounce or
a complaint suppresses the address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from drumbeat.api.admin import ERRORS, AdminRoute
from drumbeat.channels.deliveries import HEADER, deliveries_secret, parse_deliveries, signed
from drumbeat.channels.keys import SigningKeys
from drumbeat.client import Drumbeat
from drumbeat.errors import InvalidInput, Problem
from drumbeat.pipeline.clock import store_now
from drumbeat.store import Store

router = APIRouter(prefix="/v1", tags=["deliveries"], route_class=AdminRoute)

MAX_BODY = 512 * 1024
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "properties": {"events": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
}


@dataclass(frozen=True)
class Recorded:
    suppressed: int  # addresses suppressed now (not already)
    soft_bounces: int  # counted, nothing changed


def _client(store: Store, config: Any, name: str, body: bytes, signature: str | None) -> Drumbeat:
    """The named workspace's client if the body is signed with its secret, else 401 (an
    unknown workspace answers the same: a caller cannot probe for names)."""
    try:
        ws = store.workspace_id(name, create=False)
    except InvalidInput:
        ws = None
    if ws is not None:
        secret = deliveries_secret(SigningKeys(config, store)(name), name)
        if signed(secret, body, signature):
            return Drumbeat.attached(store, ws, config, lambda: store_now(store))
    raise HTTPException(401, f"{HEADER}: not a signature of this body by the workspace")


def _record(store: Store, config: Any, name: str, body: bytes, signature: str | None) -> Recorded:
    client = _client(store, config, name, body, signature)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(Problem(f"line {exc.lineno}", exc.msg), what="JSON") from None
    found = parse_deliveries(document)
    suppressed = sum(client.suppress(a, reason) for reason, a in found.suppress.items())
    return Recorded(suppressed, found.soft_bounces)


@router.post(
    "/deliveries",
    openapi_extra=_BODY,
    response_model=Recorded,
    responses={400: ERRORS[400], 401: {**ERRORS[401], "description": "Not signed so"}},
)
async def deliveries(
    request: Request,
    workspace: str = Query(description="The workspace whose addresses these are"),
    signature: str | None = Header(None, alias="X-Drumbeat-Signature"),
) -> Recorded:
    """Record bounces and complaints: `{"events": [{"type": "bounce", "bounce": "hard",
    "email": …}, {"type": "complaint", "email": …}]}`. A hard bounce or a complaint
    suppresses the address; a soft bounce is counted. All events or, with a bad one, none."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"request body larger than {MAX_BODY // 1024} KB")
    app = request.app.state
    return await run_in_threadpool(_record, app.store, app.config, workspace, body, signature)
