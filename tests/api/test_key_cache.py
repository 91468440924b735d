"""Keys and attribute types held a few seconds per serving process
(DRUMBEAT_API_KEY_CACHE_SECONDS, `recent.py`): a revoked key is refused once its time is
up, a new key works at once, and a call meeting a type fixed meanwhile is checked again."""

from __future__ import annotations

import time

import httpx

from drumbeat.api.tracking import Calls
from drumbeat.ingest.held_types import HeldTypes
from drumbeat.model.attributes import AttrType
from drumbeat.pipeline.events import EventPath
from drumbeat.recent import Recent
from drumbeat.store import Store
from drumbeat.store.keys import ApiKey, create_key, find_key, key_hash, revoke_key
from tests.api.conftest import Tenant, serving
from tests.api.test_cli import refused_within


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_key_is_refused_once_its_time_is_up(tenant: Tenant):
    clock = Clock()
    keys: Recent[str, ApiKey] = Recent(2.0, clock)
    key_id, token = create_key(tenant.store, tenant.ws, "write", time.time())

    def look_up() -> ApiKey | None:
        return keys.get(key_hash(token), lambda: find_key(tenant.store, token))

    assert look_up() == ApiKey(key_id, tenant.ws, "write")
    revoke_key(tenant.store, tenant.ws, key_id, time.time())
    clock.now += 1.9
    assert look_up() is not None  # held: at most the setting's seconds
    clock.now += 0.2
    assert look_up() is None
    assert look_up() is None  # a miss is not kept, nor is the key brought back


def test_a_new_key_works_at_once_and_zero_seconds_keeps_nothing(tenant: Tenant):
    clock = Clock()
    keys: Recent[str, ApiKey] = Recent(2.0, clock)
    _id, token = create_key(tenant.store, tenant.ws, "write", time.time())
    assert keys.get("unknown", lambda: None) is None
    assert keys.get(key_hash(token), lambda: find_key(tenant.store, token)) is not None

    never: Recent[str, ApiKey] = Recent(0.0, clock)
    key_id, other = create_key(tenant.store, tenant.ws, "write", time.time())
    assert never.get(key_hash(other), lambda: find_key(tenant.store, other)) is not None
    revoke_key(tenant.store, tenant.ws, key_id, time.time())
    assert never.get(key_hash(other), lambda: find_key(tenant.store, other)) is None


def test_a_call_meeting_a_type_fixed_meanwhile_is_checked_with_the_stored_types(
    tenant: Tenant,
):
    store: Store = tenant.store
    types = HeldTypes(store, 60.0)
    calls = Calls(store, store.write_calls, EventPath(store, max_users=100), types, tenant.ws)
    first = {"type": "identify", "userId": "u1", "traits": {"seats": 1}}
    assert calls.check_and_write([first], [None], "batch", False)[1]
    types.hold(tenant.ws, {"seats": AttrType.NUMBER})  # held, as another process fixes plan
    store.declare_attribute(tenant.ws, "plan", AttrType.NUMBER)  # another process's doing

    bad = {"type": "identify", "userId": "u2", "traits": {"plan": "pro"}}
    checked, written = calls.check_and_write([first, bad], [None, None], "batch", False)
    assert not written
    assert [p.where for p in checked.problems] == ["batch[1].traits.plan"]
    anonymous = {"type": "track", "anonymousId": "a1", "event": "opened"}
    checked, written = calls.check_and_write([bad, anonymous], [None, None], "batch", False)
    assert not written  # refused anyway: still every bad field named, the stale one too
    assert [p.where for p in checked.problems] == ["batch[0].traits.plan", "batch[1].userId"]
    good = {"type": "identify", "userId": "u2", "traits": {"plan": 3}}
    assert calls.check_and_write([good], [None], "batch", False)[1]
    assert store.load_users(tenant.ws, ["u2"])["u2"].attributes == {"plan": 3}


def test_a_server_refuses_a_revoked_key_within_the_setting(
    database_url: str, tenant: Tenant, tmp_path
):  # type: ignore[no-untyped-def]
    key_id, token = create_key(tenant.store, tenant.ws, "write", time.time())
    call = {"userId": "u", "event": "E"}
    with serving(database_url, tmp_path / "serve.log", DRUMBEAT_API_KEY_CACHE_SECONDS="1") as url:
        assert httpx.post(f"{url}/v1/track", json=call, auth=(token, "")).status_code == 200
        revoke_key(tenant.store, tenant.ws, key_id, time.time())
        refused_within(f"{url}/v1/track", call, token, seconds=1 + 3)
