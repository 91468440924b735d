"""The workspace key a request carries: HTTP basic auth with the key as the user name and an
empty password, as Segment's and RudderStack's libraries send their write key."""

from __future__ import annotations

import base64
import binascii

from fastapi import HTTPException, Request

from drumbeat.store.keys import ApiKey, find_key

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


def write_key(request: Request) -> ApiKey:
    """A live key of scope write or admin (both may send data), or 401."""
    key = find_key(request.app.state.store, presented_key(request))
    if key is None:
        raise _unauthorized("unknown or revoked key")
    return key
