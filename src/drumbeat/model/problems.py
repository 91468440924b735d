"""Pydantic validation errors as Problems: a path such as `audience.all[2].gte` and a short,
human message such as `expected a number`. Shared by every model that reads user input.

Conventions the models follow so paths read well:
- union members are tagged `<kind>` (see `Rule`); such tags are left out of paths;
- a validator that finds a problem deeper than its own field passes the rest of the path
  as `ctx={"at": ".all[1]"}` on a PydanticCustomError; it is appended to the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from drumbeat.errors import Problem

_MESSAGES: dict[str, str] = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "finite_number": "expected a finite number",
    "string_pattern_mismatch": "invalid format",
}


def format_path(prefix: str, loc: Sequence[int | str]) -> str:
    """`("all", 2, "gte")` under `audience` → `audience.all[2].gte`. Drops `<tag>` parts."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not (part.startswith("<") and part.endswith(">")):
            path += f".{part}" if path else part
    return path


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in ("literal_error", "enum"):
        return f"expected one of {ctx.get('expected', '')}".strip()
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"expected {bound} {limit} item{'s' if limit != 1 else ''}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
        bound = next((f"{words[k]} {v}" for k, v in ctx.items() if k in words), "")
        return f"expected a number {bound}".strip()
    message = error["msg"]
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    return message[:1].lower() + message[1:]


def problems_from_validation(error: ValidationError, prefix: str = "") -> list[Problem]:
    """Every error of `error` as a Problem whose path starts at `prefix`."""
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        ctx = detail.get("ctx") or {}
        where = format_path(prefix, detail["loc"]) + str(ctx.get("at", ""))
        problem = Problem(where.lstrip("."), _message(detail))
        if problem not in problems:
            problems.append(problem)
    return problems
