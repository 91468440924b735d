"""Read a YAML or JSON document from a file, with the line of a syntax error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from drumbeat.errors import InvalidInput, Problem


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
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}: line {mark.line + 1}" if mark is not None else str(path)
        reason = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(Problem(where, str(reason)), what="YAML") from None
