"""Signed unsubscribe tokens: one per (workspace, user), verifiable without a database lookup.

A token is `<payload>.<mac>`, both url-safe base64 without padding: the payload is the JSON
array `[workspace, user_id]`, the mac is HMAC-SHA256 under the workspace's key (`keys.py`) of a
purpose prefix plus the payload. The prefix keeps these MACs apart from the webhook body
signatures made with the same key. Tokens do not expire: an unsubscribe link in an old
email must keep working. Changing the secret key invalidates every link already sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import orjson

from drumbeat.errors import DrumbeatError

_PURPOSE = b"drumbeat.unsubscribe\x00"


class InvalidToken(DrumbeatError, ValueError):
    """A token that was not made with this secret, or was altered."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE + payload, hashlib.sha256).digest()


def unsubscribe_token(secret: str, workspace: str, user_id: str) -> str:
    """The token for `user_id` in `workspace`; safe in a URL path segment."""
    payload = orjson.dumps([workspace, user_id])
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify_unsubscribe_token(secret: str, token: str) -> tuple[str, str]:
    """(workspace, user_id) from a token, or InvalidToken if it was not signed with `secret`."""
    try:
        encoded_payload, encoded_mac = token.split(".")
        payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
    except (ValueError, binascii.Error) as exc:
        raise InvalidToken("malformed unsubscribe token") from exc
    if _b64(payload) != encoded_payload or _b64(mac) != encoded_mac:  # one spelling per token
        raise InvalidToken("malformed unsubscribe token")
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise InvalidToken("unsubscribe token does not verify")
    try:
        workspace, user_id = orjson.loads(payload)
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:  # signed, so not expected
        raise InvalidToken("malformed unsubscribe token") from exc
    if not isinstance(workspace, str) or not isinstance(user_id, str):
        raise InvalidToken("malformed unsubscribe token")
    return workspace, user_id
