"""The unsubscribe link end to end: an email sent through a real SMTP server carries it, a GET
changes nothing, a one-click POST unsubscribes, and no email is sent to the user after that;
forged and altered links are refused with a page saying so."""

from __future__ import annotations

import time

import httpx

from drumbeat.channels.tokens import unsubscribe_token
from drumbeat.client import Drumbeat
from drumbeat.config import settings
from tests.api.conftest import Tenant
from tests.conftest import archive_campaigns
from tests.integration.test_email import SmtpPeer

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
DAY = 86400.0


def unsubscribed(tenant: Tenant, user_id: str = "u1") -> bool:
    return tenant.store.load_users(tenant.ws, [user_id])[user_id].unsubscribed


def test_the_link_of_an_email_unsubscribes_with_one_click_and_no_email_follows(
    server: str, tenant: Tenant, database_url: str
):
    steps = [
        {"send": {"id": "hello", "channel": "email", "subject": "Hello", "body": "Hi."}},
        {"wait": "1d"},
        {"send": {"id": "again", "channel": "email", "subject": "Again", "body": "Hi."}},
    ]
    campaign = {"key": "drip", "name": "Drip", "audience": {"attr": "plan", "eq": "free"}}
    with SmtpPeer() as smtp:
        config = settings(
            database_url=database_url,
            workspace=tenant.name,
            public_url=server,
            **{k: v for k, v in smtp.settings().model_dump().items() if k.startswith("smtp_")},
        )
        try:
            with Drumbeat(config=config) as db:
                start = time.time()
                db.identify("u1", {"plan": "free", "email": "u1@example.test"})
                db.campaigns.apply({**campaign, "steps": steps}, activate=True)
                assert db.advance(start + 3600, every="1h").sent == {"sent": 1}
                (email,) = smtp.handler.emails()
                assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
                url = str(email["List-Unsubscribe"]).strip("<>")
                assert url.startswith(f"{server}/unsubscribe/")

                shown = httpx.get(url, timeout=10)
                assert shown.status_code == 200
                assert 'name="List-Unsubscribe" value="One-Click"' in shown.text
                assert shown.headers["x-frame-options"] == "DENY"
                assert not unsubscribed(tenant)  # a GET (a mail scanner's) changes nothing

                done = httpx.post(url, data=ONE_CLICK, timeout=10)
                assert done.status_code == 200 and "unsubscribed" in done.text
                assert unsubscribed(tenant)
                assert httpx.post(url, data=ONE_CLICK, timeout=10).status_code == 200  # again

                assert "sent" not in db.advance(start + 3 * DAY, every="1h").sent
                assert len(smtp.handler.emails()) == 1  # the second step was not sent
                assert [m.step for m in db.outbox("drip")] == ["hello"]  # nothing queued
        finally:
            archive_campaigns(database_url, tenant.name)


def test_forged_and_altered_links_are_refused_and_change_nothing(server: str, tenant: Tenant):
    url = tenant.store.engine.url.render_as_string(hide_password=False)
    with Drumbeat(url, workspace=tenant.name) as db:
        db.identify("u1", {"email": "u1@example.test"})
    from drumbeat.channels.keys import SigningKeys

    secret = SigningKeys(settings(database_url=url), tenant.store)(tenant.name)
    good = unsubscribe_token(secret, tenant.name, "u1")
    payload, mac = good.split(".")
    other_payload = unsubscribe_token(secret, tenant.name, "u2").split(".")[0]
    forged = [
        f"{other_payload}.{mac}",  # another user, this user's signature
        unsubscribe_token("a-key-that-is-not-the-workspaces", tenant.name, "u1"),
        unsubscribe_token(secret, "no-such-workspace", "u1"),
    ]
    for token in forged:
        for reply in (
            httpx.get(f"{server}/unsubscribe/{token}", timeout=10),
            httpx.post(f"{server}/unsubscribe/{token}", data=ONE_CLICK, timeout=10),
        ):
            assert reply.status_code == 403, (token, reply.text)
            assert "not valid" in reply.text and "<form" not in reply.text
    for token in (f"{payload}.{mac}=", "garbage", f"{payload}"):
        reply = httpx.post(f"{server}/unsubscribe/{token}", data=ONE_CLICK, timeout=10)
        assert reply.status_code == 400 and "not valid" in reply.text
    nothing = httpx.post(f"{server}/unsubscribe/{good}", data={"confirm": "yes"}, timeout=10)
    assert nothing.status_code == 400 and "List-Unsubscribe=One-Click" in nothing.text
    assert not unsubscribed(tenant)
    assert httpx.post(f"{server}/unsubscribe/{good}", data=ONE_CLICK, timeout=10).status_code == 200
    assert unsubscribed(tenant)
