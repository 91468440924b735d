"""The management endpoints against a real `drumbeat serve`, on SQLite and PostgreSQL:
campaigns from JSON and YAML, their states and stats, users read and erased, the outbox and
batches a page at a time, a dead batch retried; errors name the field at fault."""

from __future__ import annotations

import httpx
import pytest

from drumbeat.engine.program import compile_program
from drumbeat.model.campaign import parse_campaign
from drumbeat.store.erasure import address_hash
from drumbeat.store.schema import suppressions
from tests.api.conftest import Tenant, new_tenant
from tests.api.seed import DRIP, USERS, members, seed

YAML = """\
key: drip
name: Drip, again
audience: {attr: plan, eq: free}
steps:
  - send: {id: hello, channel: email, subject: Hi, body: Hello}
"""


def call(server: str, tenant: Tenant, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{server}{path}", auth=tenant.auth(), timeout=30, **kwargs)  # type: ignore[arg-type]


def test_a_campaign_from_json_then_yaml_through_its_states(server: str, admin: Tenant):
    made = call(server, admin, "POST", "/v1/campaigns", json=DRIP)
    assert made.status_code == 201, made.text
    assert (made.json()["version"], made.json()["status"]) == (1, "draft")
    again = call(
        server,
        admin,
        "POST",
        "/v1/campaigns",
        content=YAML,
        headers={"Content-Type": "application/yaml"},
    )
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 2
    shown = call(server, admin, "GET", "/v1/campaigns/drip").json()
    assert (shown["name"], shown["version"]) == ("Drip, again", 2)
    assert shown["definition"]["steps"][0]["send"]["id"] == "hello"
    assert [c["key"] for c in call(server, admin, "GET", "/v1/campaigns").json()] == ["drip"]

    def move(action: str) -> httpx.Response:
        return call(server, admin, "POST", f"/v1/campaigns/drip/{action}")

    refused = move("pause")
    assert refused.status_code == 409
    assert refused.json()["problems"] == [
        {"path": "status", "message": "campaign 'drip' is draft: cannot pause it"}
    ]
    assert move("activate").json() == {"key": "drip", "status": "active"}
    assert move("activate").json() == {"key": "drip", "status": "active"}  # changes nothing
    assert move("pause").json()["status"] == "paused"
    assert move("activate").status_code == 409  # a paused campaign is resumed
    assert move("resume").json()["status"] == "active"
    assert move("archive").json()["status"] == "archived"
    assert move("resume").status_code == 409
    assert admin.store.campaign(admin.ws, "drip").status == "archived"
    reapplied = call(server, admin, "POST", "/v1/campaigns", json=DRIP)
    assert reapplied.status_code == 409
    assert reapplied.json()["problems"][0]["path"] == "key"


def test_a_bad_definition_is_refused_at_its_path_and_nothing_is_stored(server: str, admin: Tenant):
    bad = {**DRIP, "steps": [DRIP["steps"][0], {"wait": "soon"}]}
    for path in ("/v1/campaigns", "/v1/campaigns/check"):
        answer = call(server, admin, "POST", path, json=bad)
        assert answer.status_code == 400
        assert answer.json()["problems"] == [
            {
                "path": "steps[1].wait.for",
                "message": "expected a duration such as 30s, 15m, 2h, 3d or 2w",
            }
        ]
    yaml = call(
        server,
        admin,
        "POST",
        "/v1/campaigns/check",
        content="key: [x",
        headers={"Content-Type": "application/yaml"},
    )
    assert yaml.status_code == 400 and yaml.json()["problems"][0]["path"] == "line 1"
    json = call(server, admin, "POST", "/v1/campaigns", content=b'{"key": ')
    assert json.status_code == 400 and json.json()["problems"][0]["path"] == "line 1"
    listed = call(server, admin, "POST", "/v1/campaigns", json=[DRIP])
    assert listed.status_code == 400 and listed.json()["problems"][0]["path"] == "body"
    assert admin.store.campaign(admin.ws, "drip") is None
    checked = call(server, admin, "POST", "/v1/campaigns/check", json=DRIP)
    assert checked.status_code == 200
    assert checked.json()["audience"] == 0 and checked.json()["steps"][0].startswith("send hello")
    assert admin.store.campaign(admin.ws, "drip") is None  # checked, not stored


def test_stats_count_messages_exits_and_the_control_group(server: str, admin: Tenant):
    seed(admin)
    stats = call(server, admin, "GET", "/v1/campaigns/drip/stats")
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["messages"] == {"hello": {"sent": 20}, "offer-a": {"sent": 5}}
    assert body["members"] == {"converted": 7, "inactive": 2, "active": 11}
    assert body["exits"] == {"goal": 7, "inactive": 2}
    program = compile_program(
        parse_campaign(DRIP), {}, workspace=admin.store.workspace_name(admin.ws)
    )
    split = program.nodes["offer"]
    expected: dict[str, list[int]] = {}
    for member in members(0.0):
        path, _ = split.pick(f"{program.workspace}:drip:offer:{member.user_id}")  # type: ignore[union-attr]
        counts = expected.setdefault(path, [0, 0])
        counts[0] += 1
        counts[1] += member.state == "converted"
    assert body["split"] == "offer"
    assert {p: [v["entered"], v["converted"]] for p, v in body["paths"].items()} == expected
    assert set(expected) == {"a", "control"}  # 20 users land on both paths
    assert call(server, admin, "GET", "/v1/campaigns/nope/stats").status_code == 404


def test_a_user_is_read_then_erased_and_their_address_kept_only_hashed(server: str, admin: Tenant):
    seed(admin)
    httpx.post(
        f"{server}/v1/track", json={"userId": "u3", "event": "opened"}, auth=admin.auth()
    ).raise_for_status()
    user = call(server, admin, "GET", "/v1/users/u3", params={"messages": 1}).json()
    assert (user["email"], user["attributes"]) == ("u3@example.com", {"plan": "free"})
    assert [(m["campaign"], m["state"]) for m in user["memberships"]] == [("drip", "converted")]
    assert [(m["step"], m["status"]) for m in user["messages"]] == [("offer-a", "sent")]

    erased = call(server, admin, "DELETE", "/v1/users/u3")
    assert erased.json() == {"user_id": "u3", "erased": True}
    store, ws = admin.store, admin.ws
    assert store.load_users(ws, ["u3"]) == {}
    assert store.count_events(ws) == 0
    assert store.load_members(ws, "drip", ["u3", "u4"]).keys() == {"u4"}
    assert [r["user_id"] for r in store.outbox_rows(ws, user_id="u3")] == []
    with store.engine.connect() as conn:
        kept = [
            tuple(r)
            for r in conn.execute(
                suppressions.select()
                .with_only_columns(suppressions.c.address_hash, suppressions.c.reason)
                .where(suppressions.c.workspace_id == ws)
            )
        ]
    assert kept == [(address_hash("u3@example.com"), "erased")]
    assert "u3@example.com" not in repr(kept)
    assert store.suppressed(ws, ["U3@Example.com ", "u4@example.com"]) == {"U3@Example.com "}
    gone = call(server, admin, "GET", "/v1/users/u3")
    assert gone.status_code == 404
    assert gone.json()["problems"] == [
        {"path": "user_id", "message": "no user 'u3' in this workspace"}
    ]
    assert call(server, admin, "DELETE", "/v1/users/u3").status_code == 404


def test_the_outbox_a_page_at_a_time_with_filters(server: str, admin: Tenant):
    seed(admin)
    seen: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = call(server, admin, "GET", "/v1/outbox", params=params).json()
        seen += [(m["step"], m["user_id"]) for m in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4  # 25 messages, 7 a page
    assert seen == [("hello", u) for u in USERS] + [("offer-a", u) for u in USERS[:5]]
    one = call(server, admin, "GET", "/v1/outbox", params={"user_id": "u1", "status": "sent"})
    assert [m["step"] for m in one.json()["items"]] == ["hello", "offer-a"]
    by_campaign = call(server, admin, "GET", "/v1/outbox", params={"campaign": "nope"})
    assert by_campaign.status_code == 404
    assert by_campaign.json()["problems"][0]["path"] == "campaign"
    for params, path in (
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "lost"}, "status"),
    ):
        bad = call(server, admin, "GET", "/v1/outbox", params=params)
        assert bad.status_code == 400, params
        assert [p["path"] for p in bad.json()["problems"]] == [path]


def test_a_dead_batch_is_listed_and_retried_once(server: str, admin: Tenant):
    batch_id = seed(admin)
    dead = call(server, admin, "GET", "/v1/batches", params={"status": "dead"}).json()
    assert [(b["id"], b["user_ids"], b["status"]) for b in dead["items"]] == [
        (batch_id, ["u1", "u2"], "dead")
    ]
    assert dead["next_cursor"] is None
    retried = call(server, admin, "POST", f"/v1/batches/{batch_id}/retry")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
    again = call(server, admin, "POST", f"/v1/batches/{batch_id}/retry")
    assert again.status_code == 409
    assert again.json()["problems"] == [
        {"path": "status", "message": f"batch {batch_id} is pending, not dead"}
    ]
    assert call(server, admin, "POST", "/v1/batches/999999999/retry").status_code == 404
    admin.store.set_campaign_status(admin.ws, "drip", "archived", 0.0)  # the batch skips


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/campaigns"), ("POST", "/v1/campaigns/check"), ("GET", "/v1/outbox")],
)
def test_a_write_key_may_not_manage(server: str, store, method: str, path: str):  # type: ignore[no-untyped-def]
    writer = new_tenant(store, "write")
    answer = call(server, writer, method, path, json=DRIP)
    assert answer.status_code == 403
    assert "admin key" in answer.json()["detail"]


def test_what_no_database_takes_is_refused_before_it_reaches_one(server: str, admin: Tenant):
    for method, path, options, field in (
        ("GET", "/v1/outbox", {"params": {"user_id": "u\x00"}}, "user_id"),
        ("GET", "/v1/campaigns/a%00b", {}, "key"),
        ("DELETE", "/v1/users/u%00", {}, "user_id"),
        ("POST", "/v1/campaigns", {"json": {**DRIP, "name": "a\x00"}}, "body"),
        ("POST", f"/v1/batches/{2**63}/retry", {}, "batch_id"),
        (
            "GET",
            "/v1/batches",
            {"params": {"cursor": "eyJhZnRlciI6OTIyMzM3MjAzNjg1NDc3NTgwOH0"}},
            "cursor",
        ),
    ):
        answer = call(server, admin, method, path, **options)
        assert answer.status_code == 400, (path, answer.text)
        assert [p["path"] for p in answer.json()["problems"]] == [field], path
    assert admin.store.campaign(admin.ws, "drip") is None
