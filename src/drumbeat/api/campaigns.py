"""`/v1/campaigns`: create or update from a definition (JSON or YAML), check one without
storing it, list, get, activate, pause, resume, archive, stats — `Drumbeat.campaigns` over
HTTP, with an admin key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from fastapi import APIRouter, Depends, Query, Request, Response

from drumbeat.api.admin import ERRORS, AdminRoute, conflict, not_found, workspace
from drumbeat.client import Drumbeat
from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.documents import load_yaml
from drumbeat.views import Applied, CampaignDetail, CampaignStats, CampaignSummary, Checked

router = APIRouter(
    prefix="/v1/campaigns", tags=["campaigns"], route_class=AdminRoute, responses=ERRORS
)

MAX_DEFINITION = 1024 * 1024
_DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A campaign definition (docs/campaigns.md), templates inline",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
# From each state, the changes allowed; doing what is already done changes nothing.
_MOVES = {
    "activate": ({"draft", "active"}, "active"),
    "pause": ({"active", "paused"}, "paused"),
    "resume": ({"paused", "active"}, "active"),
    "archive": ({"draft", "active", "paused", "archived"}, "archived"),
}
_SETTERS = {"active": "resume", "paused": "pause", "archived": "archive"}  # Campaigns' methods


@dataclass(frozen=True)
class CampaignView(CampaignDetail):
    definition: dict[str, Any]  # as stored: the one `POST /v1/campaigns` would take back


@dataclass(frozen=True)
class AppliedView:
    key: str
    version: int
    status: str | None
    kept: int  # active members whose step this version keeps
    moved: dict[str, int]  # removed step → members who exit as completed


@dataclass(frozen=True)
class CheckedView:
    key: str
    name: str
    steps: list[str]  # the step tree, one line a step
    audience: int  # users in the audience now


@dataclass(frozen=True)
class StatusView:
    key: str
    status: str


async def definition(request: Request) -> Any:
    """The body as a document: YAML if its content type says so, else JSON."""
    raw = await request.body()
    if len(raw) > MAX_DEFINITION:
        raise InvalidInput(Problem("body", f"larger than {MAX_DEFINITION // 1024} KB"))
    doc = _parsed(request, raw)
    try:
        shown = orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(Problem("body", str(exc))) from None
    if b"\\u0000" in shown:  # no database stores one in JSON text
        raise InvalidInput(Problem("body", "contains a NUL character"))
    return doc


def _parsed(request: Request, raw: bytes) -> Any:
    if "yaml" in request.headers.get("content-type", ""):
        try:
            return load_yaml(raw.decode("utf-8", errors="replace"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else "body"
            reason = str(getattr(exc, "problem", None) or exc)
            raise InvalidInput(Problem(where, reason), what="YAML") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(Problem(f"line {exc.lineno}", exc.msg), what="JSON") from None


def _checked(work: Any, doc: Any) -> Any:
    """`work(doc)`, its problems at their path in the definition (`steps[1].wait`), not
    under the `[0]` the Python API gives a definition passed as data."""
    if not isinstance(doc, dict):
        raise InvalidInput(Problem("body", "expected a campaign definition (an object)"))
    try:
        return work(doc)
    except InvalidInput as exc:
        problems = [
            Problem(p.where.removeprefix("[0]").lstrip(": "), p.message) for p in exc.problems
        ]
        raise InvalidInput(problems, what="campaign (nothing was stored)") from None


def _existing(client: Drumbeat, key: str) -> Any:
    row = client.store.campaign(client.ws, key)
    if row is None:
        raise not_found("key", f"no campaign {key!r} in this workspace")
    return row


@router.post(
    "",
    openapi_extra=_DEFINITION_BODY,
    response_model=AppliedView,
    status_code=201,
    responses={200: {"model": AppliedView, "description": "A new version of a campaign"}},
)
def apply(
    response: Response,
    doc: Any = Depends(definition),
    activate: bool = Query(False, description="Make it active"),
    client: Drumbeat = Depends(workspace),
) -> AppliedView:
    """Create the campaign (201) or store its next version (200); members keep their step
    if the new version has it, and exit as completed if not. An archived campaign: 409."""
    key = doc.get("key") if isinstance(doc, dict) else None
    row = client.store.campaign(client.ws, key) if isinstance(key, str) else None
    if row is not None and row.status == "archived":
        raise conflict("key", f"campaign {key!r} is archived: apply it under a new key")
    applied: Applied
    (applied,) = _checked(lambda d: client.campaigns.apply(d, activate=activate), doc)
    if applied.version > 1:
        response.status_code = 200
    return AppliedView(
        applied.key, applied.version, applied.status, applied.kept, dict(applied.moved)
    )


@router.post("/check", openapi_extra=_DEFINITION_BODY, response_model=CheckedView)
def check(doc: Any = Depends(definition), client: Drumbeat = Depends(workspace)) -> CheckedView:
    """Validate a definition without storing it: its step tree and audience size now, or
    400 with every problem at its path (as `drumbeat campaign check`)."""
    checked: Checked
    (checked,) = _checked(client.campaigns.check, doc)
    return CheckedView(checked.key, checked.name, checked.steps, checked.audience)


@router.get("", response_model=list[CampaignSummary])
def list_campaigns(client: Drumbeat = Depends(workspace)) -> list[CampaignSummary]:
    """Every campaign of the workspace with its status and members."""
    return client.campaigns.list()


@router.get("/{key}", response_model=CampaignView)
def get(key: str, client: Drumbeat = Depends(workspace)) -> CampaignView:
    """The campaign's definition, status, step tree, members and messages by step."""
    row = _existing(client, key)
    shown = client.campaigns.show(key)
    return CampaignView(**vars(shown), definition=row.definition)


@router.get("/{key}/stats", response_model=CampaignStats)
def stats(key: str, client: Drumbeat = Depends(workspace)) -> CampaignStats:
    """Messages by step and status, members by state, exits by reason, and conversion per
    path of the first split (the control group against the others)."""
    _existing(client, key)
    return client.campaigns.stats(key)


def _move(name: str) -> None:
    allowed, target = _MOVES[name]

    def move(key: str, client: Drumbeat = Depends(workspace)) -> StatusView:
        row = _existing(client, key)
        if row.status not in allowed:
            raise conflict("status", f"campaign {key!r} is {row.status}: cannot {name} it")
        if row.status != target:
            getattr(client.campaigns, _SETTERS[target])(key)
        return StatusView(key, target)

    move.__name__ = name
    move.__doc__ = (
        f"Make the campaign {target} (allowed when {' or '.join(sorted(allowed))}); 409 else."
    )
    router.post(f"/{{key}}/{name}", response_model=StatusView)(move)


for _name in _MOVES:
    _move(_name)
