"""Everything a campaign must pass beyond its schema before it is stored: what would
otherwise fail every message at send time.

- rules: values that cannot fit an attribute's type (`rules/resolve.py`);
- sends: a channel no installed package provides; a webhook step without a URL, or with one
  the webhook channel's SSRF guard refuses without DNS (scheme, literal addresses; a host
  name is resolved at send time);
- templates (subject, body, template files): syntax, what the sandbox refuses, variables and
  attributes no user has (`channels/template_checks.py`).

Known attributes are the standard user fields and the workspace's attribute types (declared,
or first seen in imported data). All problems are reported together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from drumbeat.channels.registry import available
from drumbeat.channels.template_checks import Fields, template_problems, unknown
from drumbeat.config import settings
from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.attributes import STANDARD_FIELDS, AttrType
from drumbeat.model.campaign import Branch, Campaign, Send, SendSpec, WaitUntil, walk_steps
from drumbeat.rules.resolve import type_problems
from drumbeat.store import Store

USER_FIELDS = frozenset({"user_id", *STANDARD_FIELDS})


@dataclass(frozen=True)
class Known:
    """What the checks compare with, read once for any number of campaigns: the
    workspace's attribute types, the channels installed, the webhook allow list."""

    types: dict[str, AttrType]
    channels: list[str]
    webhook_allow: tuple[str, ...]  # read by the webhook channel's guard, loaded (with its
    # HTTP client library, ~80 ms of a command's start) only for a campaign that sends webhooks


def known(store: Store, ws: int, *, webhook_allow: Sequence[str] | None = None) -> Known:
    """`webhook_allow` defaults to the setting (DRUMBEAT_WEBHOOK_ALLOW)."""
    allow = tuple(settings().webhook_allow if webhook_allow is None else webhook_allow)
    return Known(store.attribute_types(ws), available(), allow)


def check(
    campaign: Campaign,
    store: Store,
    ws: int,
    *,
    webhook_allow: Sequence[str] | None = None,
    against: Known | None = None,
) -> None:
    """Raise InvalidInput listing every problem, against what `known` reads (`against`,
    when checking several campaigns)."""
    against = against or known(store, ws, webhook_allow=webhook_allow)
    types, channels, allow = against.types, against.channels, against.webhook_allow
    fields: Fields = {
        "user": USER_FIELDS | set(types),
        "campaign": {"key"},
        "unsubscribe_url": None,
    }
    problems: list[Problem] = []
    rules = [("audience", campaign.audience)]
    if campaign.goal:
        rules.append(("goal.rule", campaign.goal.rule))
    for path, _, step in walk_steps(campaign.steps):
        if isinstance(step, Branch):
            rules.append((f"{path}.branch.if", step.branch.if_))
        elif isinstance(step, WaitUntil):
            rules.append((f"{path}.wait_until.rule", step.wait_until.rule))
        elif isinstance(step, Send):
            problems += _send_problems(step.send, f"{path}.send", fields, channels, allow)
    for name, text in campaign.templates.items():
        problems += template_problems(text, f"templates.{name}", fields)
    for prefix, rule in rules:
        problems += type_problems(rule, types, prefix)
    if problems:
        raise InvalidInput(problems, what=f"campaign {campaign.key!r} (nothing was stored)")


def _send_problems(
    send: SendSpec, where: str, fields: Fields, channels: list[str], allow: Sequence[str]
) -> list[Problem]:
    problems = template_problems(send.subject, f"{where}.subject", fields)
    if send.body is not None:
        problems += template_problems(send.body, f"{where}.body", fields)
    if send.channel not in channels:
        problems.append(Problem(f"{where}.channel", unknown("channel", send.channel, channels)))
    elif send.channel == "webhook":
        problems += _webhook_problems(send, where, allow)
    return problems


def _webhook_problems(send: SendSpec, where: str, allow: Sequence[str]) -> Iterator[Problem]:
    """The URL the dispatcher will call (`url`, else `data.url`), through the channel's guard."""
    from drumbeat.channels.ssrf import AllowList, Refused

    if send.url is not None:
        url, where = send.url, f"{where}.url"
    elif "url" in send.data:
        url, where = send.data["url"], f"{where}.data.url"
    else:
        yield Problem(f"{where}.url", "a webhook step needs a url")
        return
    try:
        AllowList(allow).check_static(url)
    except Refused as exc:
        yield Problem(where, str(exc))
