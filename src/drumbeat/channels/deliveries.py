"""Delivery events coming back from an email provider: bounces and complaints.

A hard bounce or a complaint suppresses the address (`store/erasure.py`: only its sha256
is kept) so that it is never mailed again; a soft bounce (a full mailbox, a greylisting) is
counted and changes nothing: the provider retries those itself.

Whoever posts them proves they know the workspace's deliveries secret: the body's
HMAC-SHA256 under it, in hex, in the `X-Drumbeat-Signature: sha256=<hex>` header. The secret
is derived from the workspace's signing key (`keys.py`), with a purpose of its own and the
workspace's name, so it never equals the key that signs unsubscribe links and differs per
workspace even when `DRUMBEAT_SECRET_KEY` is shared: `drumbeat key deliveries-secret`
prints it. Changing the signing key changes it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drumbeat.channels.keys import sign
from drumbeat.errors import InvalidInput, Problem

HEADER = "X-Drumbeat-Signature"
_PURPOSE = b"drumbeat.deliveries\x00"
KINDS = ("bounce", "complaint")
BOUNCES = ("hard", "soft")
MAX_ADDRESS = 320


def deliveries_secret(signing_key: str, workspace: str) -> str:
    """The workspace's deliveries secret (hex), from its signing key."""
    message = _PURPOSE + workspace.encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def signed(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` under `secret` (in constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header.strip())


@dataclass
class Deliveries:
    """The addresses to suppress, by reason, and how many soft bounces were left alone."""

    suppress: dict[str, list[str]] = field(default_factory=dict)  # reason → addresses
    soft_bounces: int = 0


def parse_deliveries(body: Any) -> Deliveries:
    """`{"events": [{"type": "bounce", "bounce": "hard"|"soft", "email": …},
    {"type": "complaint", "email": …}]}`; InvalidInput naming every bad field."""
    events = body.get("events") if isinstance(body, Mapping) else None
    if not isinstance(events, list):
        raise InvalidInput(Problem("events", "required: a list of bounce and complaint events"))
    found, problems = Deliveries(), []
    for index, event in enumerate(events):
        at = f"events[{index}]"
        if not isinstance(event, Mapping):
            problems.append(Problem(at, "expected an object"))
            continue
        kind, email = event.get("type"), event.get("email")
        if kind not in KINDS:
            problems.append(Problem(f"{at}.type", f"{kind!r}: use one of {', '.join(KINDS)}"))
        if not isinstance(email, str) or "@" not in email or len(email) > MAX_ADDRESS:
            problems.append(Problem(f"{at}.email", "required: an email address"))
        bounce = event.get("bounce")
        if kind == "bounce" and bounce not in BOUNCES:
            problems.append(Problem(f"{at}.bounce", f"{bounce!r}: use one of hard, soft"))
        if problems or not isinstance(email, str):
            continue
        if kind == "bounce" and bounce == "soft":
            found.soft_bounces += 1
        else:
            found.suppress.setdefault(str(kind), []).append(email)
    if problems:
        raise InvalidInput(problems, what="delivery events (nothing was recorded)")
    return found
