"""The fast path of a track call (`api/calls.py`, `_plain_track`) takes exactly the calls
the full way takes without a problem and without a time zone, and makes the same record."""

from __future__ import annotations

from typing import Any

import pytest

from drumbeat.api.calls import _plain_track, _tracked
from drumbeat.errors import InvalidInput
from drumbeat.ingest.validate import Validator

NOW = 1_700_000_000.0
PLAIN: dict[str, Any] = {
    "type": "track",
    "userId": "u1",
    "event": "paid",
    "properties": {"plan": "pro", "n": 3, "nested": {"a": [1, 2]}},
    "messageId": "m-1",
}
VARIANTS: list[dict[str, Any]] = [
    {},
    {"messageId": None},
    {"messageId": ""},
    {"messageId": 7},
    {"messageId": "m" * 256},
    {"userId": 42},
    {"userId": ""},
    {"userId": "  "},
    {"userId": None, "anonymousId": "a1"},
    {"userId": "u" * 256},
    {"event": ""},
    {"event": " "},
    {"event": "e" * 201},
    {"event": ["paid"]},
    {"properties": None},
    {"properties": []},
    {"timestamp": "2026-12-04T10:00:00Z"},
    {"timestamp": "2026-12-04T10:00:00+02:00"},
    {"timestamp": 1_700_000_100},
    {"timestamp": ""},
    {"timestamp": "yesterday"},
    {"timestamp": True},
    {"context": {"ip": "127.0.0.1"}},
    {"context": {"timezone": ""}},
    {"context": None},
    {"context": "web"},
    {"anonymousId": "a2", "integrations": {"All": True}},
]


def _full(message: dict[str, Any]) -> Any:
    try:
        return _tracked(message, None, Validator({}, now=NOW), "", nul_free=True)
    except InvalidInput:
        return None


@pytest.mark.parametrize("change", VARIANTS, ids=repr)
def test_the_fast_path_agrees_with_the_full_way(change: dict[str, Any]) -> None:
    message = {**PLAIN, **change}
    full = _full(message)
    fast = _plain_track(message, NOW)
    if full is None:
        assert fast is None  # a bad call is left to the full way, which names its problems
    elif fast is not None:
        assert [fast] == full


def test_the_common_shapes_take_the_fast_path() -> None:
    for change in ({}, {"timestamp": 1_700_000_100}, {"context": {"ip": "127.0.0.1"}}):
        assert _plain_track({**PLAIN, **change}, NOW) is not None
