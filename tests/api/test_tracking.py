"""The tracking endpoints over real HTTP: keys, isolation, idempotency, refusals, limits."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from drumbeat.store.keys import create_key, revoke_key
from drumbeat.store.schema import events
from tests.api.conftest import Tenant, new_tenant
from tests.api.test_clients import stored_events


def post(server: str, path: str, body: Any, auth: tuple[str, str] | None, **kw: Any) -> Any:
    return httpx.post(f"{server}{path}", json=body, auth=auth, timeout=10, **kw)


def test_no_key_a_wrong_key_and_a_revoked_key_get_401(server: str, tenant: Tenant):
    call = {"userId": "u", "event": "E"}
    assert post(server, "/v1/track", call, None).status_code == 401
    assert post(server, "/v1/track", call, ("dbk_write_nope", "")).status_code == 401
    key_id, token = create_key(tenant.store, tenant.ws, "write", 0.0)
    revoke_key(tenant.store, tenant.ws, key_id, 0.0)
    reply = post(server, "/v1/track", call, (token, ""))
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Basic")
    assert tenant.store.count_events(tenant.ws) == 0


def test_an_admin_key_may_send_too(server: str, store):
    admin = new_tenant(store, scope="admin")
    reply = post(server, "/v1/identify", {"userId": "a", "traits": {"x": 1}}, admin.auth())
    assert reply.status_code == 200
    assert store.load_users(admin.ws, ["a"])["a"].attributes == {"x": 1}


def test_a_key_writes_only_into_its_own_workspace(server: str, store):
    mine, theirs = new_tenant(store), new_tenant(store)
    batch = {
        "batch": [
            {"type": "identify", "userId": "shared", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "shared", "event": "E", "messageId": "m-1"},
        ]
    }
    assert post(server, "/v1/batch", batch, theirs.auth()).status_code == 200
    assert store.count_users(mine.ws) == store.count_events(mine.ws) == 0
    assert store.count_users(theirs.ws) == store.count_events(theirs.ws) == 1
    # the same messageId in another workspace is another message
    assert post(server, "/v1/batch", batch, mine.auth()).status_code == 200
    assert store.count_events(mine.ws) == 1


def test_a_message_id_sent_twice_is_stored_once(server: str, tenant: Tenant):
    call = {"userId": "u", "event": "Paid", "messageId": "pay-1", "properties": {"n": 1}}
    for _ in range(2):
        assert post(server, "/v1/track", call, tenant.auth()).status_code == 200
    again = {"batch": [{**call, "type": "track"}, {**call, "type": "track"}]}
    assert post(server, "/v1/batch", again, tenant.auth()).status_code == 200
    assert [e[3] for e in stored_events(tenant)] == ["pay-1"]

    identify = {"userId": "u", "traits": {"plan": "pro"}, "messageId": "id-1"}
    post(server, "/v1/identify", identify, tenant.auth())
    version = tenant.store.load_users(tenant.ws, ["u"])["u"].version
    assert post(server, "/v1/identify", identify, tenant.auth()).status_code == 200
    assert tenant.store.load_users(tenant.ws, ["u"])["u"].version == version


def test_track_takes_its_timestamp_and_context_timezone(server: str, tenant: Tenant):
    call = {
        "userId": "tz",
        "event": "Opened",
        "timestamp": "2026-01-02T03:04:05Z",
        "context": {"timezone": "Asia/Tokyo"},
    }
    assert post(server, "/v1/track", call, tenant.auth()).status_code == 200
    assert tenant.store.load_users(tenant.ws, ["tz"])["tz"].timezone == "Asia/Tokyo"
    with tenant.store.engine.connect() as conn:
        ts = conn.execute(select(events.c.ts).where(events.c.workspace_id == tenant.ws)).scalar()
    assert ts == 1767323045.0


BAD_BATCH = [
    {"type": "identify", "userId": "ok", "traits": {"plan": "pro"}},
    {"type": "identify", "userId": "bad", "traits": {"plan": 3}},
    {"type": "track", "anonymousId": "anon-1", "event": "E"},
    {"type": "track", "userId": "ok", "properties": []},
    {"type": "alias", "userId": "ok", "previousId": "x"},
    {"type": "identify", "userId": "ok", "context": {"timezone": "Mars/Base"}},
    "not an object",
    {"type": "track", "userId": "ok", "event": "Fine"},
]


def test_a_bad_batch_is_refused_whole_naming_each_bad_field_by_index(server: str, tenant: Tenant):
    reply = post(server, "/v1/batch", {"batch": BAD_BATCH}, tenant.auth())
    assert reply.status_code == 400
    paths = [p["path"] for p in reply.json()["problems"]]
    assert paths == [
        "batch[1].traits.plan",
        "batch[2].userId",
        "batch[3].event",
        "batch[3].properties",
        "batch[4].type",
        "batch[5].context.timezone",
        "batch[6]",
    ]
    assert "not supported yet" in reply.json()["problems"][4]["message"]
    assert tenant.store.count_users(tenant.ws) == tenant.store.count_events(tenant.ws) == 0


def test_partial_stores_the_good_items_and_names_the_bad(server: str, tenant: Tenant):
    reply = post(server, "/v1/batch?partial=true", {"batch": BAD_BATCH}, tenant.auth())
    assert reply.status_code == 200
    assert reply.json()["stored"] == 2
    assert len(reply.json()["problems"]) == 7
    assert tenant.store.load_users(tenant.ws, ["ok"])["ok"].attributes == {"plan": "pro"}
    assert [e[1] for e in stored_events(tenant)] == ["Fine"]


def test_single_calls_name_their_bad_fields(server: str, tenant: Tenant):
    reply = post(server, "/v1/identify", {"userId": "", "traits": 5}, tenant.auth())
    assert reply.status_code == 400
    assert [p["path"] for p in reply.json()["problems"]] == ["userId", "traits"]
    several = {"anonymousId": "a", "event": "", "context": {"timezone": "Mars/Base"}}
    reply = post(server, "/v1/track", several, tenant.auth())
    assert [p["path"] for p in reply.json()["problems"]] == [
        "userId",
        "context.timezone",
        "event",
    ]
    bad_json = httpx.post(f"{server}/v1/track", content=b"{nope", auth=tenant.auth(), timeout=10)
    assert bad_json.status_code == 400
    assert post(server, "/v1/batch", {"batch": "x"}, tenant.auth()).status_code == 400


@pytest.mark.parametrize("kind", ["alias", "page", "screen", "group"])
def test_calls_not_supported_yet_are_refused_with_501(server: str, tenant: Tenant, kind: str):
    reply = post(server, f"/v1/{kind}", {"userId": "u"}, tenant.auth())
    assert reply.status_code == 501
    assert "not supported yet" in reply.json()["detail"]


def test_bodies_past_the_limits_get_413(server: str, tenant: Tenant):
    big = {"userId": "u", "event": "E", "properties": {"text": "x" * 33 * 1024}}
    assert post(server, "/v1/track", big, tenant.auth()).status_code == 413
    batch = {"batch": [{**big, "type": "track"}]}
    reply = post(server, "/v1/batch", batch, tenant.auth())
    assert reply.status_code == 400  # a batch under 500 KB, one item over 32 KB
    assert reply.json()["problems"][0]["path"] == "batch[0]"
    huge = {"batch": [{"type": "track", "userId": "u", "event": "E" * 100}] * 5000}
    assert post(server, "/v1/batch", huge, tenant.auth()).status_code == 413
    # small when packed, past the limit unpacked
    packed = gzip.compress(orjson.dumps(huge))
    reply = httpx.post(
        f"{server}/v1/batch",
        content=packed,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
        auth=tenant.auth(),
        timeout=10,
    )
    assert len(packed) < 500 * 1024
    assert reply.status_code == 413
    assert tenant.store.count_events(tenant.ws) == 0


def test_health_readiness_and_openapi(server: str):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/v1/identify", "/v1/track", "/v1/batch", "/healthz", "/readyz"} <= set(paths)


def test_readyz_says_when_migrations_are_pending(server: str, store):
    from sqlalchemy import text

    with store.writing() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    try:
        reply = httpx.get(f"{server}/readyz")
    finally:
        with store.writing() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert reply.status_code == 503
    assert reply.json() == {
        "status": "migrations pending",
        "detail": f"schema at 0007, this version needs {head}",
    }


def test_concurrent_batches_naming_the_same_users_in_any_order_all_land(
    server: str, tenant: Tenant
):
    """Two clients write the same users in opposite orders at once: on PostgreSQL, rows
    locked in the order given would deadlock one of the two transactions (a 500)."""
    from concurrent.futures import ThreadPoolExecutor

    ids = [f"c{n:03d}" for n in range(60)]

    def send(round_: int) -> list[int]:
        order = ids if round_ % 2 else ids[::-1]
        batch = [{"type": "identify", "userId": u, "traits": {"round": round_}} for u in order]
        with httpx.Client(base_url=server, auth=tenant.auth(), timeout=30) as client:
            return [client.post("/v1/batch", json={"batch": batch}).status_code]

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = [code for codes in pool.map(send, range(36)) for code in codes]
    assert codes == [200] * 36
    assert tenant.store.count_users(tenant.ws) == 60
