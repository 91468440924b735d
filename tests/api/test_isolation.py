"""A key of one workspace never reads or changes another's data: every management endpoint
is called on workspace A's campaign, user, batch and dead message with workspace B's admin key, A's
write key, no key and A's revoked admin key; A's data is the same afterwards."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi.routing import APIRoute

from drumbeat.api import campaigns, operations, users
from drumbeat.api.app import create_app
from drumbeat.store.keys import create_key, revoke_key
from tests.api.conftest import Tenant, new_tenant
from tests.api.seed import DRIP, dead_message, seed

# POST /v1/deliveries takes no key: a signature per workspace (tests/api/test_deliveries.py)
SIGNED = {("POST", "/v1/deliveries")}


def endpoints(batch_id: int, message_id: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, route, URL on A's data, request options); creating a campaign comes last:
    with B's key it makes B's own `drip`, which the calls before must not find."""
    on = "/v1/campaigns/drip"
    return [
        ("GET", "/v1/campaigns", "/v1/campaigns", {}),
        ("POST", "/v1/campaigns/check", "/v1/campaigns/check", {"json": DRIP}),
        ("GET", "/v1/campaigns/{key}", on, {}),
        ("GET", "/v1/campaigns/{key}/stats", f"{on}/stats", {}),
        ("POST", "/v1/campaigns/{key}/activate", f"{on}/activate", {}),
        ("POST", "/v1/campaigns/{key}/pause", f"{on}/pause", {}),
        ("POST", "/v1/campaigns/{key}/resume", f"{on}/resume", {}),
        ("POST", "/v1/campaigns/{key}/archive", f"{on}/archive", {}),
        ("GET", "/v1/users/{user_id:path}", "/v1/users/u1", {}),
        ("DELETE", "/v1/users/{user_id:path}", "/v1/users/u1", {}),
        ("GET", "/v1/outbox", "/v1/outbox?user_id=u1", {}),
        ("GET", "/v1/batches", "/v1/batches", {}),
        ("POST", "/v1/batches/{batch_id}/retry", f"/v1/batches/{batch_id}/retry", {}),
        ("POST", "/v1/outbox/{message_id}/retry", f"/v1/outbox/{message_id}/retry", {}),
        ("POST", "/v1/campaigns", "/v1/campaigns", {"json": DRIP}),
    ]


def test_every_management_endpoint_is_called_here():
    served = {
        (method, route.path)
        for module in (campaigns, users, operations)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert served == {(method, route) for method, route, _, _ in endpoints(0, 0)}
    paths = create_app("sqlite://").openapi()["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert {(m, r.replace(":path", "")) for m, r in served | SIGNED} <= documented
    for method, route in served | SIGNED:  # each answer has its schema, errors theirs
        responses = paths[route.replace(":path", "")][method.lower()]["responses"]
        ok = responses.get("200") or responses["201"]
        assert "$ref" in str(ok["content"]["application/json"]["schema"]), route
        assert "ErrorBody" in str(responses["400"]), route


def snapshot(a: Tenant) -> tuple[Any, ...]:
    store, ws = a.store, a.ws
    row = store.campaign(ws, "drip")
    return (
        (row.version, row.status, row.definition) if row else None,
        store.load_users(ws, ["u1"]),
        store.count_events(ws),
        store.member_counts(ws, "drip"),
        store.outbox_rows(ws),
        store.batch_rows(ws),
        store.suppressed(ws, ["u1@example.com"]),
    )


def test_another_workspaces_key_no_key_and_a_revoked_key_reach_nothing(server: str, store, admin):  # type: ignore[no-untyped-def]
    a: Tenant = admin
    batch_id = seed(a)
    message_id = dead_message(a)
    httpx.post(
        f"{server}/v1/track", json={"userId": "u1", "event": "E"}, auth=a.auth()
    ).raise_for_status()
    before = snapshot(a)
    b = new_tenant(store, "admin")
    writer = new_tenant(store, "write")
    writer.key = create_key(store, a.ws, "write", time.time())[1]
    revoked_id, revoked = create_key(store, a.ws, "admin", time.time())
    revoke_key(store, a.ws, revoked_id, time.time())
    for method, route, url, options in endpoints(batch_id, message_id):
        where = f"{method} {route}"

        def send(
            auth: tuple[str, str] | None,
            url: str = url,
            method: str = method,
            options: dict[str, Any] = options,
        ) -> Any:
            return httpx.request(method, f"{server}{url}", auth=auth, timeout=30, **options)

        assert send(None).status_code == 401, where
        assert send((revoked, "")).status_code == 401, where
        assert send(writer.auth()).status_code == 403, where
        answer = send(b.auth())
        if route in ("/v1/campaigns", "/v1/campaigns/check") and method == "POST":
            assert answer.status_code in (200, 201), where  # about B's own campaign
        elif route in ("/v1/campaigns", "/v1/outbox", "/v1/batches"):
            assert answer.status_code == 200, where
            listed = answer.json()
            assert (listed if isinstance(listed, list) else listed["items"]) == [], where
        else:
            assert answer.status_code == 404, (where, answer.text)
            assert "in this workspace" in answer.json()["problems"][0]["message"], where
    assert snapshot(a) == before
    assert b.store.campaign(b.ws, "drip").version == 1  # B's own, made by the last call
    assert b.store.campaign(a.ws, "drip").version == 1
