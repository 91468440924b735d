"""`/v1/identify`, `/v1/track`, `/v1/batch`: Segment's tracking API, stored in one write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from drumbeat.api.auth import write_key
from drumbeat.api.body import MAX_BATCH, MAX_CALL, read_json
from drumbeat.api.calls import NOT_YET, Checked, check_messages, not_supported
from drumbeat.api.write_group import WriteCalls
from drumbeat.ingest.held_types import HeldTypes, stale
from drumbeat.ingest.validate import Validator
from drumbeat.model.attributes import AttrType
from drumbeat.pipeline.clock import store_now
from drumbeat.pipeline.events import EventPath
from drumbeat.store import Store
from drumbeat.store.keys import ApiKey

router = APIRouter(prefix="/v1", tags=["tracking"])

_JSON_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}
}
PartialOpt = Query(False, description="Store the good items of a batch and name the bad ones")


@router.post("/identify", openapi_extra=_JSON_BODY)
async def identify(request: Request, key: ApiKey = Depends(write_key)) -> Any:
    """Set a user's traits (Segment's identify)."""
    message = await read_json(request, MAX_CALL)
    return await _store(request, key, [message], ["identify"], where="", partial=False)


@router.post("/track", openapi_extra=_JSON_BODY)
async def track(request: Request, key: ApiKey = Depends(write_key)) -> Any:
    """Record an event of a user (Segment's track)."""
    message = await read_json(request, MAX_CALL)
    return await _store(request, key, [message], ["track"], where="", partial=False)


@router.post("/batch", openapi_extra=_JSON_BODY)
async def batch(
    request: Request, key: ApiKey = Depends(write_key), partial: bool = PartialOpt
) -> Any:
    """Identify and track calls together, stored in one transaction: all or, unless
    `?partial=true`, none."""
    body = await read_json(request, MAX_BATCH)
    messages = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        raise HTTPException(400, "batch: required, a list of identify and track calls")
    context = body.get("context")
    if isinstance(context, dict):  # a batch-wide context applies to the items without one
        messages = [_with_context(m, context) for m in messages]
    kinds: list[str | None] = [None] * len(messages)
    return await _store(request, key, messages, kinds, where="batch", partial=partial)


def _with_context(message: Any, context: dict[str, Any]) -> Any:
    if isinstance(message, dict) and "context" not in message:
        return {**message, "context": context}
    return message


def _refuse_not_yet(kind: str) -> None:
    async def refuse(_key: ApiKey = Depends(write_key)) -> None:
        raise HTTPException(501, not_supported(kind))

    refuse.__doc__ = f"Not supported yet: {kind} calls are refused with 501."
    router.post(f"/{kind}", status_code=501)(refuse)


for _kind in NOT_YET:
    _refuse_not_yet(_kind)


async def _store(
    request: Request,
    key: ApiKey,
    messages: list[Any],
    kinds: list[str | None],
    *,
    where: str,
    partial: bool,
) -> Any:
    state = request.app.state
    calls = Calls(state.store, state.write_calls, state.events, state.types, key.workspace_id)
    checked, written = await run_in_threadpool(
        calls.check_and_write, messages, kinds, where, partial
    )
    if checked.problems and not written:
        return JSONResponse(
            {"detail": "invalid payload: nothing was stored", "problems": _listed(checked)},
            status_code=400,
        )
    reply: dict[str, Any] = {"success": True}
    if checked.problems:
        reply.update(stored=len(messages) - checked.refused, problems=_listed(checked))
    return reply


@dataclass
class Calls:
    """One request's calls into one workspace, checked and written."""

    store: Store
    write_calls: WriteCalls  # the store's, or a `WriteGroup`'s (SQLite)
    events: EventPath
    types: HeldTypes  # the workspace's attribute types, held a while
    ws: int

    def check_and_write(
        self, messages: list[Any], kinds: list[str | None], where: str, partial: bool
    ) -> tuple[Checked, bool]:
        """Checked messages, and whether the good ones were written (durably: committed)
        with the engine run for their users (the event path) in the same transaction.

        The types held may be a few seconds old: checked again with the types read afresh
        when that could matter (`ingest/held_types.py`)."""
        now = store_now(self.store)
        return self.types.checking(
            self.ws,
            lambda types, fresh: self._check_and_write(
                messages, kinds, where, partial, now, types, fresh=fresh
            ),
        )

    def _check_and_write(
        self,
        messages: list[Any],
        kinds: list[str | None],
        where: str,
        partial: bool,
        now: float,
        types: dict[str, AttrType],
        *,
        fresh: bool = False,
    ) -> tuple[Checked, bool]:
        ws = self.ws
        validator = Validator(types, now=now)
        checked = check_messages(messages, kinds, validator, where)
        if checked.problems and not partial:
            if validator.new_types and not fresh:
                raise stale()
            return checked, False
        if checked.users or checked.events:
            step = self.events.step(ws, checked.users, checked.events, now)
            self.write_calls(
                ws, checked.users, checked.events, now, new_types=validator.new_types, then=step
            )
            if validator.new_types:
                self.types.forget(ws)  # this process sees the types it fixed at once
        return checked, bool(checked.users or checked.events)


def _listed(checked: Checked) -> list[dict[str, str]]:
    return [{"path": p.where, "message": p.message} for p in checked.problems]
