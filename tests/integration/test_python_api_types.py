"""The Python client holds its workspace's attribute types a moment
(DRUMBEAT_API_KEY_CACHE_SECONDS, `ingest/held_types.py`), on SQLite and PostgreSQL: a type
another process fixed meanwhile is never misjudged, and its own are seen at once."""

from __future__ import annotations

import pytest

from drumbeat.client import Drumbeat
from drumbeat.errors import InvalidInput
from drumbeat.model.attributes import AttrType


def test_a_call_meeting_a_type_fixed_meanwhile_is_checked_with_the_stored_types(
    client: Drumbeat,
):
    client.identify("u1", {"seats": 1})  # fixes seats: the types are read again next time
    client.identify("u1", {"seats": 2})  # and now held: seats
    client.store.declare_attribute(client.ws, "plan", AttrType.NUMBER)  # another process

    with pytest.raises(InvalidInput) as refused:  # its write meets plan fixed: checked again
        client.identify("u2", {"plan": "pro"})
    assert [p.where for p in refused.value.problems] == ["[0].traits.plan"]
    calls = [{"user_id": "u3", "traits": {"plan": "pro"}}, {"user_id": "", "traits": {}}]
    with pytest.raises(InvalidInput) as refused:  # refused anyway: every bad field named
        client.identify_many(calls)
    assert [p.where for p in refused.value.problems] == ["[0].traits.plan", "[1].user_id"]
    assert client.users(["u2", "u3"]) == {}

    client.identify("u2", {"plan": 3})
    assert client.users(["u2"])["u2"].attributes == {"plan": 3}


def test_a_type_the_client_fixes_or_declares_is_seen_at_once(client: Drumbeat):
    client.identify("u1", {"seats": 1})
    with pytest.raises(InvalidInput):  # seats is a number now, held or not
        client.identify("u1", {"seats": "many"})
    client.declare_attribute("tier", "string")
    with pytest.raises(InvalidInput):
        client.identify("u1", {"tier": 2})
    assert client.users(["u1"])["u1"].attributes == {"seats": 1}
