"""The in-app inbox over real HTTP: user tokens and write keys, marking read, isolation, CORS."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from drumbeat.channels.base import Message
from drumbeat.channels.in_app import InAppChannel
from drumbeat.channels.keys import SigningKeys
from drumbeat.channels.tokens import inbox_token, unsubscribe_token
from drumbeat.client import Drumbeat
from drumbeat.config import settings
from tests.api.conftest import Tenant, new_tenant, serving

APP = "https://app.example.com"


def deliver(tenant: Tenant, user_id: str, *subjects: str) -> None:
    channel = InAppChannel(settings(), tenant.store)
    messages = [
        Message(f"{tenant.name}/c/s/{user_id}/{s}", tenant.name, "c", "s", user_id, None, s, s)
        for s in subjects
    ]
    assert all(r.outcome == "sent" for r in channel.send_batch(messages))


def minted(tenant: Tenant, user_id: str, ttl: str = "1h") -> str:
    url = tenant.store.engine.url.render_as_string(hide_password=False)
    with Drumbeat(url, workspace=tenant.name) as db:
        return db.inbox_token(user_id, ttl)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(server: str, user_id: str, headers: dict[str, str] | None = None, **kw) -> httpx.Response:
    return httpx.get(f"{server}/v1/inbox/{user_id}", headers=headers, timeout=10, **kw)


def test_a_user_token_reads_the_inbox_and_marks_it_read(server: str, tenant: Tenant):
    deliver(tenant, "u1", "first", "second", "third")
    deliver(tenant, "u2", "not yours")
    token = minted(tenant, "u1")
    reply = get(server, "u1", bearer(token))
    assert reply.status_code == 200, reply.text
    inbox = reply.json()
    assert inbox["unread"] == 3
    assert [m["subject"] for m in inbox["messages"]] == ["third", "second", "first"]
    assert all(m["read_at"] is None and m["campaign"] == "c" for m in inbox["messages"])
    third, second, _ = (m["id"] for m in inbox["messages"])

    (theirs,) = get(server, "u2", auth=tenant.auth()).json()["messages"]
    read = f"{server}/v1/inbox/u1/read"
    body = {"ids": [third, second, theirs["id"]]}
    assert httpx.post(read, json=body, headers=bearer(token)).json() == {"marked": 2}
    assert httpx.post(read, json=body, headers=bearer(token)).json() == {"marked": 0}
    unread = get(server, "u1", bearer(token), params={"unread_only": "true"}).json()
    assert (unread["unread"], [m["subject"] for m in unread["messages"]]) == (1, ["first"])
    assert get(server, "u2", auth=tenant.auth()).json()["unread"] == 1  # not marked by u1

    page = get(server, "u1", bearer(token), params={"limit": 1, "before_id": third}).json()
    assert [m["subject"] for m in page["messages"]] == ["second"]
    assert page["messages"][0]["read_at"] is not None


def test_a_token_opens_its_own_users_inbox_only(server: str, tenant: Tenant, store):
    deliver(tenant, "u1", "hello")
    token = minted(tenant, "u1")
    assert get(server, "u2", bearer(token)).status_code == 403
    assert (
        httpx.post(
            f"{server}/v1/inbox/u2/read", json={"ids": [1]}, headers=bearer(token)
        ).status_code
        == 403
    )

    secret = SigningKeys(settings(), store)(tenant.name)
    payload, mac = token.split(".")
    forged = [
        f"{payload}.{mac[:-2]}{'A' if mac[-2] != 'A' else 'B'}{mac[-1]}",  # altered signature
        f"{minted(tenant, 'u2').split('.')[0]}.{mac}",  # another user's payload
        inbox_token("another-secret-long-enough", tenant.name, "u1", int(time.time()) + 60),
        inbox_token(secret, tenant.name, "u1", int(time.time()) - 1),  # expired
        unsubscribe_token(secret, tenant.name, "u1"),  # another purpose, same key
        "not-a-token",
    ]
    for bad in forged:
        reply = get(server, "u1", bearer(bad))
        assert reply.status_code == 401, (bad, reply.text)
        assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "expired" in get(server, "u1", bearer(forged[3])).json()["detail"]
    assert get(server, "u1").status_code == 401


def test_a_write_key_reads_its_own_workspace_only(server: str, tenant: Tenant, store):
    other = new_tenant(store)
    deliver(tenant, "u1", "mine")
    assert [m["subject"] for m in get(server, "u1", auth=tenant.auth()).json()["messages"]] == [
        "mine"
    ]
    assert get(server, "u1", auth=other.auth()).json() == {
        "user_id": "u1",
        "unread": 0,
        "messages": [],
    }
    (mine,) = get(server, "u1", auth=tenant.auth()).json()["messages"]
    marked = httpx.post(f"{server}/v1/inbox/u1/read", json={"ids": [mine["id"]]}, auth=other.auth())
    assert marked.json() == {"marked": 0}
    # a token of the other workspace for the same user id opens that workspace's inbox only
    assert get(server, "u1", bearer(minted(other, "u1"))).json()["messages"] == []


def test_bad_requests_are_refused_with_the_field(server: str, tenant: Tenant):
    reply = httpx.post(f"{server}/v1/inbox/u1/read", json={"ids": ["x"]}, auth=tenant.auth())
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "ids", 0]
    assert get(server, "u1", auth=tenant.auth(), params={"limit": 0}).status_code == 422
    assert get(server, "u%00", auth=tenant.auth()).status_code == 422


def test_inbox_token_command_prints_a_token_that_works(server: str, tenant: Tenant):
    import subprocess
    import sys

    url = tenant.store.engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-m", "drumbeat", "--workspace", tenant.name, "inbox-token", "u1"],
        env={"DRUMBEAT_DATABASE_URL": url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert get(server, "u1", bearer(done.stdout.strip())).status_code == 200
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "drumbeat",
            "--workspace",
            tenant.name,
            "inbox-token",
            "u1",
            "--ttl",
            "soon",
        ],
        env={"DRUMBEAT_DATABASE_URL": url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "ttl" in bad.stderr


@pytest.fixture(scope="module")
def cors_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve-cors") / "serve.log"
    with serving(database_url, log, DRUMBEAT_CORS_ORIGINS=f"{APP},http://localhost:3000") as url:
        yield url


def preflight(server: str, origin: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    return httpx.options(f"{server}/v1/inbox/u1", headers=headers, timeout=10)


def test_cors_lets_the_listed_origins_call_from_a_browser(cors_server: str, tenant: Tenant):
    deliver(tenant, "u1", "hello")
    allowed = preflight(cors_server, APP)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "GET" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers

    refused = preflight(cors_server, "https://evil.example.com")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers

    headers = {**bearer(minted(tenant, "u1")), "Origin": APP}
    reply = get(cors_server, "u1", headers)
    assert reply.status_code == 200 and reply.json()["unread"] == 1
    assert reply.headers["access-control-allow-origin"] == APP
    other = get(cors_server, "u1", {**headers, "Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_by_default(server: str, tenant: Tenant):
    assert "access-control-allow-origin" not in preflight(server, APP).headers
    reply = get(server, "u1", {**bearer(minted(tenant, "u1")), "Origin": APP})
    assert reply.status_code == 200
    assert "access-control-allow-origin" not in reply.headers
