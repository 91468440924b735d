"""Rendering message templates: Jinja2's immutable sandbox, autoescape for HTML, plain data.

Templates see `user` (standard fields and attributes, timestamps as ISO-8601), `campaign`
(`key`) and `unsubscribe_url`: plain dicts and strings only, so a template cannot reach
Drumbeat's objects. A value the user lacks is written as empty text (`user.a.b` too), and its
name is recorded for the caller (`render(..., missing=names)`); `| default(...)` gives it a
fallback instead. A template that still fails to render fails its message permanently.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from drumbeat.errors import Problem
from drumbeat.model.attributes import AttrType, format_timestamp
from drumbeat.model.user import User

_misses: ContextVar[set[str] | None] = ContextVar("template_misses", default=None)


class Missing(ChainableUndefined):
    """A missing value: empty when written into a message, and recorded when it is (a value
    that is only tested, `{% if user.vip %}`, or given a default is not a miss)."""

    __slots__ = ()

    def __str__(self) -> str:
        misses = _misses.get()
        if misses is not None and self._undefined_name is not None:
            misses.add(self._undefined_name)
        return ""


_TEXT = ImmutableSandboxedEnvironment(autoescape=False, undefined=Missing)
_HTML = ImmutableSandboxedEnvironment(autoescape=True, undefined=Missing)
GLOBALS = frozenset(_TEXT.globals)  # range, dict, …: names a template may use unassigned


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Any:
    return (_HTML if html else _TEXT).from_string(source)


def parse(source: str) -> nodes.Template:
    """The template's syntax tree; raises TemplateSyntaxError."""
    return _TEXT.parse(source)


def syntax_problems(source: str, where: str) -> list[Problem]:
    """The syntax error of a template (an unknown filter or test included), with its line."""
    try:
        _TEXT.compile(source)
    except TemplateSyntaxError as exc:
        return [Problem(f"{where}: line {exc.lineno}", exc.message or "syntax error")]
    return []


def user_context(user: User, types: dict[str, AttrType]) -> dict[str, Any]:
    """The user as a template sees it: one flat dict, timestamps in ISO-8601. A standard
    field the user lacks is left out, like a missing attribute (empty, or its default)."""
    context: dict[str, Any] = {}
    for name, value in user.attributes.items():
        if types.get(name) is AttrType.TIMESTAMP and isinstance(value, int | float):
            context[name] = format_timestamp(float(value))
        else:
            context[name] = value
    context.update(user_id=user.user_id, unsubscribed=user.unsubscribed)
    for name in ("email", "timezone"):
        if getattr(user, name) is not None:
            context[name] = getattr(user, name)
    for name in ("created_at", "last_seen_at"):
        if getattr(user, name) is not None:
            context[name] = format_timestamp(getattr(user, name))
    return context


def render(
    source: str, context: dict[str, Any], *, html: bool = False, missing: set[str] | None = None
) -> str:
    """The rendered text; the names of missing values it wrote as empty go into `missing`."""
    if "{" not in source:  # no tags, variables or comments: the text is the message as is
        return source
    token = _misses.set(missing)
    try:
        return str(_compiled(source, html).render(context))
    finally:
        _misses.reset(token)
