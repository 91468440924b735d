"""Where a command's log lines go: standard error, as plain messages (DRUMBEAT_LOG_FORMAT
text, the default) or one JSON object a line (json) for a log pipeline to read.

A JSON line carries time (ISO-8601, UTC), level, logger and message, the fields a line was
given (`log.info(..., extra=fields(batch=…, campaign=…))`), and the traceback if any."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

HANDLER_NAME = "drumbeat"
_FIELDS = "drumbeat_fields"


def fields(**values: Any) -> dict[str, Any]:
    """The `extra` of a log call whose values a JSON line shows as its own keys."""
    return {_FIELDS: values}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, _FIELDS, {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(log_format: str, level: str) -> None:
    """One handler on the root logger (replacing the one an earlier call put there)."""
    root = logging.getLogger()
    remove_handler()
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter("%(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())


def remove_handler() -> None:
    """Take `configure`'s handler off the root logger, if there."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
