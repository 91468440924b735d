"""The key that signs unsubscribe tokens and webhook bodies, and verifies the tokens.

`DRUMBEAT_SECRET_KEY`, when set, is every workspace's key: several stores or processes can
share it, and a webhook receiver checks signatures with it. Unset, each workspace gets a
random key on first use, kept in the store's settings, so one workspace's links cannot be
made with another's key and no key is ever one anybody could read in the docs. It is
never printed. Changing a key breaks every unsubscribe link already sent with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store.base import Store

SETTING = "secret_key"


class SigningKeys:
    """Each workspace's key, read from the store once per object (one a dispatcher and one
    a channel), not once per message."""

    def __init__(self, settings: Settings, store: Store | None) -> None:
        explicit = settings.secret_key
        self._explicit = None if explicit is None else explicit.get_secret_value()
        if self._explicit is None and store is None:
            raise ValueError("DRUMBEAT_SECRET_KEY is unset and there is no store to keep a key in")
        self._store = store
        self._stored: dict[str, str] = {}

    def __call__(self, workspace: str) -> str:
        if self._explicit is not None:
            return self._explicit
        key = self._stored.get(workspace)
        if key is None:
            assert self._store is not None  # checked when made
            key = self._stored[workspace] = stored_key(self._store, workspace)
        return key


def stored_key(store: Store, workspace: str) -> str:
    """The workspace's key in the store, made at random on first use (by whichever process
    comes first: the others read the same one back)."""
    ws = store.workspace_id(workspace, create=False)
    made = secrets.token_urlsafe(32)
    return str(store.retrying(lambda: store.add_setting(ws, SETTING, made), "reading the key"))


def sign(secret: str, body: bytes) -> str:
    """The signature of a body under a key (`X-Drumbeat-Signature`, and what a delivery
    report's header is checked against): `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
