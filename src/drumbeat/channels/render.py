"""Rendering message templates: Jinja2's immutable sandbox, autoescape for HTML, plain data.

Templates see `user` (standard fields and attributes, timestamps as ISO-8601), `campaign`
(`key`) and `unsubscribe_url`: plain dicts and strings only, so a template cannot reach
Drumbeat's objects. A template that fails to render fails its message permanently.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from drumbeat.errors import Problem
from drumbeat.model.attributes import AttrType, format_timestamp
from drumbeat.model.user import User

_TEXT = ImmutableSandboxedEnvironment(autoescape=False)
_HTML = ImmutableSandboxedEnvironment(autoescape=True)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Any:
    return (_HTML if html else _TEXT).from_string(source)


def syntax_problems(source: str, where: str) -> list[Problem]:
    """The syntax error of a template, if any, with its line."""
    try:
        _TEXT.parse(source)
    except TemplateSyntaxError as exc:
        return [Problem(f"{where}: line {exc.lineno}", exc.message or "syntax error")]
    return []


def user_context(user: User, types: dict[str, AttrType]) -> dict[str, Any]:
    """The user as a template sees it: one flat dict, timestamps in ISO-8601."""
    context: dict[str, Any] = {}
    for name, value in user.attributes.items():
        if types.get(name) is AttrType.TIMESTAMP and isinstance(value, int | float):
            context[name] = format_timestamp(float(value))
        else:
            context[name] = value
    context.update(
        user_id=user.user_id,
        email=user.email,
        timezone=user.timezone,
        unsubscribed=user.unsubscribed,
    )
    for name in ("created_at", "last_seen_at"):
        stamp = getattr(user, name)
        context[name] = format_timestamp(stamp) if stamp is not None else None
    return context


def render(source: str, context: dict[str, Any], *, html: bool = False) -> str:
    if "{" not in source:  # no tags, variables or comments: the text is the message as is
        return source
    return str(_compiled(source, html).render(context))
