"""Tokens signed with a workspace's key (channels/tokens.py), checked for a request: the
workspace a token names picks the key, the key verifies the token, and the workspace's id
is what the request then reads and writes under."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi import FastAPI

from drumbeat.channels.keys import SigningKeys
from drumbeat.channels.tokens import ForgedToken, claimed_workspace
from drumbeat.errors import InvalidInput
from drumbeat.store import Store

_LOCK = threading.Lock()


def _keys(app: FastAPI) -> SigningKeys:
    """One SigningKeys per app: each workspace's key is read from the store once."""
    with _LOCK:
        keys = getattr(app.state, "signing_keys", None)
        if keys is None:
            keys = app.state.signing_keys = SigningKeys(app.state.config, app.state.store)
    return keys


def verified(
    app: FastAPI, purpose: bytes, token: str, verify: Callable[[str, str], tuple[str, str]]
) -> tuple[int, str]:
    """(workspace id, user id) of a token `verify(secret, token)` accepts; InvalidToken
    (ForgedToken when it does not verify, or names a workspace that does not exist)."""
    store: Store = app.state.store
    workspace = claimed_workspace(purpose, token)
    try:
        ws = store.workspace_id(workspace, create=False)
    except InvalidInput:
        raise ForgedToken("the token names no workspace of this server") from None
    named, user_id = verify(_keys(app)(workspace), token)
    if named != workspace:  # cannot be: the payload was verified, and it names the workspace
        raise ForgedToken("the token names another workspace")
    return ws, user_id
