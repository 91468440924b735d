"""`/unsubscribe/{token}`: the link of every email (`{public_url}/unsubscribe/{token}`, in its
List-Unsubscribe header and its templates' `unsubscribe_url`).

- `POST` with the body `List-Unsubscribe=One-Click` unsubscribes the user the token names:
  the one-click unsubscribe of RFC 8058, which mail clients send without showing a page.
- `GET` (a person following the link, or a mail scanner fetching it) changes nothing: it
  shows a page with a button that sends that same POST.

No key: the token is the credential, signed with the workspace's key; a forged or altered
one gets 403 (400 when it is not even shaped like a token) and a page saying so.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from drumbeat.api.body import read_body
from drumbeat.api.signed import verified
from drumbeat.channels.tokens import UNSUBSCRIBE, ForgedToken, InvalidToken
from drumbeat.channels.tokens import verify_unsubscribe_token as verify
from drumbeat.model.records import UserRecord
from drumbeat.pipeline.clock import store_now
from drumbeat.store import Store

router = APIRouter(prefix="/unsubscribe", tags=["unsubscribe"])

ONE_CLICK = ("List-Unsubscribe", "One-Click")
MAX_FORM = 1024
# the token is in the URL: no caching, no Referer to elsewhere, no framing (a hidden frame
# could get the button clicked)
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; style-src 'unsafe-inline'",
}
_HTML: dict[str, Any] = {"content": {"text/html": {"schema": {"type": "string"}}}}
_PAGES: dict[int | str, dict[str, Any]] = {200: _HTML, 400: _HTML, 403: _HTML}
_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {ONE_CLICK[0]: {"type": "string", "enum": [ONE_CLICK[1]]}},
                    "required": [ONE_CLICK[0]],
                }
            }
        },
    }
}


def page(title: str, text: str, status: int = 200, form: bool = False) -> HTMLResponse:
    button = (
        '<form method="post"><input type="hidden" name="{}" value="{}">'
        '<button type="submit">Unsubscribe</button></form>'.format(*ONE_CLICK)
        if form
        else ""
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>body{{font-family:sans-serif;max-width:32em;"
        f"margin:3em auto;padding:0 1em}}</style></head><body><h1>{title}</h1><p>{text}</p>"
        f"{button}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def refused(exc: InvalidToken) -> HTMLResponse:
    status = 403 if isinstance(exc, ForgedToken) else 400
    why = "It was not made by this sender, or it was altered on the way."
    return page("This unsubscribe link is not valid", why, status)


@router.get("/{token}", response_class=HTMLResponse, responses=_PAGES)
def confirm(request: Request, token: str) -> HTMLResponse:
    """A page asking to confirm: following the link changes nothing by itself."""
    try:
        verified(request.app, UNSUBSCRIBE, token, verify)
    except InvalidToken as exc:
        return refused(exc)
    text = "You will no longer receive emails from us. Press the button to confirm."
    return page("Unsubscribe?", text, form=True)


@router.post("/{token}", response_class=HTMLResponse, responses=_PAGES, openapi_extra=_FORM)
async def unsubscribe(request: Request, token: str) -> HTMLResponse:
    """Unsubscribe (RFC 8058 one-click, or the confirmation page's button)."""
    form = parse_qs((await read_body(request, MAX_FORM)).decode("utf-8", "replace"))
    if form.get(ONE_CLICK[0]) != [ONE_CLICK[1]]:
        why = "Send the form body List-Unsubscribe=One-Click to unsubscribe."
        return page("Nothing was changed", why, 400)
    try:
        await run_in_threadpool(_unsubscribe, request, token)
    except InvalidToken as exc:
        return refused(exc)
    return page("You are unsubscribed", "You will no longer receive emails from us.")


def _unsubscribe(request: Request, token: str) -> None:
    ws, user_id = verified(request.app, UNSUBSCRIBE, token, verify)
    store: Store = request.app.state.store
    store.write_users(ws, [UserRecord(user_id, {"unsubscribed": True})], store_now(store))
