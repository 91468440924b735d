"""Read a YAML or JSON document from a file, with the line of a syntax error.

YAML is read with the YAML 1.2 core schema's scalars, not PyYAML's YAML 1.1 ones: only
`true`/`false` (`True`, `TRUE`, …) are booleans, so `on`, `off`, `yes`, `no`, `y`, `n` stay
strings (`entry: {on: …}`, `country: {in: [NO, SE]}`); `18:00` is a string, not the
sexagesimal 64800; `010` is 10, not octal 8. Dates (`2026-01-02`) are still read as dates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import yaml

from drumbeat.errors import InvalidInput, Problem

_YAML_1_1_SCALARS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


class CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's booleans, integers and floats."""


def _core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text)  # decimal, leading zeros included


CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_1_1_SCALARS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
CoreSchemaLoader.add_implicit_resolver(  # before floats: a float's pattern matches `12` too
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
CoreSchemaLoader.add_constructor("tag:yaml.org,2002:int", _core_int)


def load_yaml(text: str) -> Any:
    """A YAML document with the core schema's scalars (see the module's docstring)."""
    return yaml.load(text, Loader=CoreSchemaLoader)  # a SafeLoader: builds plain data only


def load_document(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(Problem(str(path), exc.strerror or str(exc)), what="file") from None
    if path.suffix.lower() == ".json":
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(
                Problem(f"{path}: line {exc.lineno}", exc.msg), what="JSON"
            ) from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}: line {mark.line + 1}" if mark is not None else str(path)
        reason = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(Problem(where, str(reason)), what="YAML") from None
