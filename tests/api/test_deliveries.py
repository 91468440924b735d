"""`POST /v1/deliveries` against a real `drumbeat serve`, on SQLite and PostgreSQL: bounces
and complaints signed with the secret `drumbeat key deliveries-secret` prints."""

from __future__ import annotations

import httpx
import orjson

from drumbeat.channels.keys import sign
from tests.api.conftest import Tenant, new_tenant
from tests.api.test_cli import drumbeat

EVENTS = {
    "events": [
        {"type": "bounce", "bounce": "hard", "email": "Gone@Example.com"},
        {"type": "bounce", "bounce": "soft", "email": "full@example.com"},
        {"type": "complaint", "email": "angry@example.com"},
    ]
}


def secret_of(database_url: str, tenant: Tenant) -> str:
    name = tenant.store.workspace_name(tenant.ws)
    done = drumbeat(database_url, "key", "deliveries-secret", "--workspace", name)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def post(server: str, tenant: Tenant, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Drumbeat-Signature"] = signature
    name = tenant.store.workspace_name(tenant.ws)
    return httpx.post(
        f"{server}/v1/deliveries", params={"workspace": name}, content=body, headers=headers
    )


def test_hard_bounces_and_complaints_suppress_soft_bounces_do_not(
    server: str, database_url: str, tenant: Tenant
):
    secret = secret_of(database_url, tenant)
    assert len(secret) == 64
    body = orjson.dumps(EVENTS)
    answer = post(server, tenant, body, sign(secret, body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"suppressed": 2, "soft_bounces": 1}
    addresses = ["gone@example.com", "full@example.com", "angry@example.com", "x@example.com"]
    assert tenant.store.suppressed(tenant.ws, addresses) == {
        "gone@example.com",
        "angry@example.com",
    }
    again = post(server, tenant, body, sign(secret, body))
    assert again.json() == {"suppressed": 0, "soft_bounces": 1}


def test_a_body_not_signed_by_the_workspace_is_refused_and_changes_nothing(
    server: str, database_url: str, store, tenant: Tenant
):  # type: ignore[no-untyped-def]
    other = new_tenant(store)
    secret, others = secret_of(database_url, tenant), secret_of(database_url, other)
    assert secret != others
    body = orjson.dumps(EVENTS)
    for signature in (
        None,
        "sha256=" + "0" * 64,
        sign(others, body),  # another workspace's secret
        sign(secret, body + b" "),  # another body
        sign(secret, body)[7:],  # without its scheme
    ):
        refused = post(server, tenant, body, signature)
        assert refused.status_code == 401, signature
        assert "X-Drumbeat-Signature" in refused.json()["detail"]
    # signed by the workspace, sent to another: the other's secret does not verify it
    assert post(server, other, body, sign(secret, body)).status_code == 401
    unknown = httpx.post(
        f"{server}/v1/deliveries",
        params={"workspace": "no-such-workspace"},
        content=body,
        headers={"X-Drumbeat-Signature": sign(secret, body)},
    )
    assert unknown.status_code == 401
    assert tenant.store.suppressed(tenant.ws, ["gone@example.com"]) == set()
    assert other.store.suppressed(other.ws, ["gone@example.com"]) == set()


def test_bad_events_are_named_and_none_is_recorded(server: str, database_url: str, tenant: Tenant):
    secret = secret_of(database_url, tenant)
    body = orjson.dumps(
        {
            "events": [
                {"type": "complaint", "email": "ok@example.com"},
                {"type": "bounce", "email": "b@example.com"},
                {"type": "open", "email": "nope"},
            ]
        }
    )
    answer = post(server, tenant, body, sign(secret, body))
    assert answer.status_code == 400
    assert answer.json()["problems"] == [
        {"path": "events[1].bounce", "message": "None: use one of hard, soft"},
        {"path": "events[2].type", "message": "'open': use one of bounce, complaint"},
        {"path": "events[2].email", "message": "required: an email address"},
    ]
    assert tenant.store.suppressed(tenant.ws, ["ok@example.com"]) == set()
    no_workspace = httpx.post(f"{server}/v1/deliveries", content=body)
    assert no_workspace.status_code == 400
    assert no_workspace.json()["problems"][0]["path"] == "workspace"
    not_json = post(server, tenant, b"{", sign(secret, b"{"))
    assert not_json.status_code == 400 and not_json.json()["problems"][0]["path"] == "line 1"
