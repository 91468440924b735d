"""A claimed outbox row made into the message its channel sends: the step's payload
rendered for its recipient (`render.py`), and the values a message wrote empty noted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drumbeat import metrics
from drumbeat.channels.base import Message
from drumbeat.channels.keys import SigningKeys
from drumbeat.channels.render import render, user_context
from drumbeat.channels.tokens import unsubscribe_token
from drumbeat.model.attributes import AttrType
from drumbeat.model.user import User
from drumbeat.store.outbox_claims import OutboxRow
from drumbeat.store.sends import SendResult


def compose(
    row: OutboxRow,
    user: User,
    types: dict[str, AttrType],
    workspace: str,
    missing: set[str],
    keys: SigningKeys,
    public_url: str,
) -> Message:
    """The row's message to `user`: its step's subject and body rendered (a plain text, with
    no `{`, as is); the names of values it wrote empty go into `missing`."""
    payload = row.payload
    subject, body = payload.get("subject") or "", payload.get("body") or ""
    # plain text (no `{`) renders as is: the context, a signed token, is not made for it
    templated = "{" in subject or "{" in body
    context = _context(row, user, types, workspace, keys, public_url) if templated else {}
    html = bool(payload.get("html"))
    data = dict(payload.get("data") or {})
    if payload.get("url"):
        data["url"] = payload["url"]
    return Message(
        row.dedupe_key,
        workspace,
        row.campaign_key,
        row.step_id,
        user.user_id,
        user.email,
        render(subject, context, missing=missing),
        render(body, context, html=html, missing=missing),
        html,
        data,
    )


def _context(
    row: OutboxRow,
    user: User,
    types: dict[str, AttrType],
    workspace: str,
    keys: SigningKeys,
    public_url: str,
) -> dict[str, Any]:
    """What the message's templates see (render.py)."""
    token = unsubscribe_token(keys(workspace), workspace, user.user_id)
    return {
        "user": user_context(user, types),
        "campaign": {"key": row.campaign_key},
        "unsubscribe_url": f"{public_url}/unsubscribe/{token}",
    }


def note_missing(
    results: list[SendResult], rows: Mapping[int, OutboxRow], missing: Mapping[int, set[str]]
) -> list[SendResult]:
    """A message sent with values its user lacks (written empty) is counted per name, and
    says so in its row (`drumbeat outbox` shows it in the error column)."""
    noted = []
    for result in results:
        if result.status == "sent" and missing.get(result.id):
            row, names = rows[result.id], sorted(missing[result.id])
            for name in names:
                metrics.TEMPLATE_MISSING.labels(row.campaign_key, row.step_id, name).inc()
            result = result._replace(error=f"sent without {', '.join(names)} (written empty)")
        noted.append(result)
    return noted
