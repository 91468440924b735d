"""The HTTP API's calls take the one-user event path: a tracked event enters its user into
the campaign that starts on it before the reply, with its first message queued."""

from __future__ import annotations

import time

from drumbeat.campaigns import apply, plan_apply
from drumbeat.model.campaign import parse_campaign
from tests.api.conftest import Tenant
from tests.api.test_tracking import post
from tests.conftest import settle_leftovers

WELCOME = {
    "key": "welcome",
    "name": "welcome",
    "audience": {"all": []},
    "entry": {"on": {"event": "signed_up"}},
    "steps": [{"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hi"}}],
}


def test_a_tracked_event_enters_its_user_before_the_reply(server: str, tenant: Tenant):
    store, ws = tenant.store, tenant.ws
    apply(plan_apply(parse_campaign(WELCOME), store, ws), store, ws, time.time(), activate=True)
    try:
        reply = post(server, "/v1/track", {"userId": "u1", "event": "signed_up"}, tenant.auth())
        assert reply.status_code == 200
        member = store.load_members(ws, "welcome", ["u1"]).get("u1")
        assert member is not None and member.last_step == "hello"
        assert [r["step_id"] for r in store.outbox_rows(ws)] == ["hello"]
        reply = post(server, "/v1/identify", {"userId": "u2", "traits": {"x": 1}}, tenant.auth())
        assert reply.status_code == 200 and store.load_members(ws, "welcome", ["u2"]) == {}
    finally:
        store.set_campaign_status(ws, "welcome", "archived", time.time())
        settle_leftovers(store, ws)  # its message is not sent by other tests' dispatches
