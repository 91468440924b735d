"""Signed tokens, verifiable without a database lookup: unsubscribe links (one per workspace
and user) and inbox tokens (what a web app presents to read one user's in-app inbox).

A token is `<payload>.<mac>`, both url-safe base64 without padding: the payload is a JSON
array starting `[workspace, user_id]`, the mac is HMAC-SHA256 under the workspace's key
(`keys.py`) of a purpose prefix plus the payload. The prefix keeps the kinds apart from
each other and from the webhook body signatures made with the same key: an unsubscribe
token does not open an inbox. Unsubscribe tokens do not expire (a link in an old email must
keep working); an inbox token carries its expiry (epoch seconds) as a third element.
Changing the secret key invalidates every token already given out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from drumbeat.errors import DrumbeatError

UNSUBSCRIBE = b"drumbeat.unsubscribe\x00"
INBOX = b"drumbeat.inbox\x00"
_NAMES = {UNSUBSCRIBE: "unsubscribe", INBOX: "inbox"}


class InvalidToken(DrumbeatError, ValueError):
    """A token that was not made with this secret, or was altered, or has expired."""


class ForgedToken(InvalidToken):
    """A well-formed token whose signature does not verify under the key."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(purpose: bytes, secret: str, payload: bytes) -> bytes:
    return hmac.digest(secret.encode(), purpose + payload, hashlib.sha256)


def _signed(purpose: bytes, secret: str, fields: list[Any]) -> str:
    payload = orjson.dumps(fields)
    return f"{_b64(payload)}.{_b64(_mac(purpose, secret, payload))}"


def _parts(purpose: bytes, token: str) -> tuple[bytes, bytes]:
    """The payload and mac of a token, each in its one spelling, or InvalidToken."""
    malformed = InvalidToken(f"malformed {_NAMES[purpose]} token")
    try:
        encoded_payload, encoded_mac = token.split(".")
        payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
    except (ValueError, binascii.Error) as exc:
        raise malformed from exc
    if _b64(payload) != encoded_payload or _b64(mac) != encoded_mac:  # one spelling per token
        raise malformed
    return payload, mac


def _load(purpose: bytes, payload: bytes) -> list[Any]:
    """The payload's fields: a list whose first two are strings (workspace, user id)."""
    try:
        fields = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidToken(f"malformed {_NAMES[purpose]} token") from exc
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields[:2]):
        raise InvalidToken(f"malformed {_NAMES[purpose]} token")
    return fields


def claimed_workspace(purpose: bytes, token: str) -> str:
    """The workspace a token names, NOT verified: only to pick the key that verifies it."""
    fields = _load(purpose, _parts(purpose, token)[0])
    if not fields:
        raise InvalidToken(f"malformed {_NAMES[purpose]} token")
    return str(fields[0])


def _verified(purpose: bytes, secret: str, token: str, count: int) -> list[Any]:
    payload, mac = _parts(purpose, token)
    if not hmac.compare_digest(mac, _mac(purpose, secret, payload)):
        raise ForgedToken(f"{_NAMES[purpose]} token does not verify")
    fields = _load(purpose, payload)
    if len(fields) != count:  # signed, so not expected
        raise InvalidToken(f"malformed {_NAMES[purpose]} token")
    return fields


def unsubscribe_token(secret: str, workspace: str, user_id: str) -> str:
    """The token for `user_id` in `workspace`; safe in a URL path segment."""
    return _signed(UNSUBSCRIBE, secret, [workspace, user_id])


def verify_unsubscribe_token(secret: str, token: str) -> tuple[str, str]:
    """(workspace, user_id) from a token, or InvalidToken if it was not signed with `secret`."""
    workspace, user_id = _verified(UNSUBSCRIBE, secret, token, 2)
    return workspace, user_id


def inbox_token(secret: str, workspace: str, user_id: str, expires: int) -> str:
    """A token that reads and marks `user_id`'s inbox until `expires` (epoch seconds)."""
    return _signed(INBOX, secret, [workspace, user_id, int(expires)])


def verify_inbox_token(secret: str, token: str, now: float) -> tuple[str, str]:
    """(workspace, user_id) from an inbox token signed with `secret` that has not expired."""
    workspace, user_id, expires = _verified(INBOX, secret, token, 3)
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise InvalidToken("malformed inbox token")
    if now >= expires:
        raise InvalidToken("inbox token has expired: mint a new one")
    return workspace, user_id
