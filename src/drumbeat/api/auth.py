"""The workspace key a request carries: HTTP basic auth with the key as the user name and an
empty password, as Segment's and RudderStack's libraries send their write key."""

from __future__ import annotations

import base64
import binascii

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from drumbeat.recent import Recent
from drumbeat.store.keys import ApiKey, find_key, key_hash

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="drumbeat"'}


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(401, why, headers=_CHALLENGE)


def presented_key(request: Request) -> str:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not credentials:
        raise _unauthorized("send the workspace's write key as the basic-auth user name")
    try:
        user, _, _password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("basic-auth credentials are not base64 of 'key:'") from None
    return user


async def write_key(request: Request) -> ApiKey:
    """A live key of scope write or admin (both may send data), or 401. Looked up in the
    store at most every DRUMBEAT_API_KEY_CACHE_SECONDS per process (`recent.py`); a key
    held is answered without leaving the event loop."""
    keys: Recent[str, ApiKey] = request.app.state.keys
    held = keys.held(key_hash(presented_key(request)))
    return held if held is not None else await run_in_threadpool(live_key, request)


def live_key(request: Request) -> ApiKey:
    """`write_key` for a dependency that is not a coroutine: may read the store."""
    token = presented_key(request)
    keys: Recent[str, ApiKey] = request.app.state.keys
    key = keys.get(key_hash(token), lambda: find_key(request.app.state.store, token))
    if key is None:
        raise _unauthorized("unknown or revoked key")
    return key
