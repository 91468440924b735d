"""`campaign check` and `apply` refuse what would fail every message at send time (unknown
channel, unknown attribute, unsafe template, refused webhook URL), each at its path, all
together, nothing stored; and at send time a value the user lacks renders as its default or
as empty text, counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drumbeat import metrics
from drumbeat.campaigns import check, plan_apply
from drumbeat.client import Drumbeat
from drumbeat.errors import InvalidInput
from drumbeat.model.campaign import parse_campaign
from tests.e2e.helpers import campaign
from tests.world import World

KNOWN_CHANNELS = "(known: email, file, in_app, webhook)"
KNOWN_ATTRIBUTES = (
    "(known: created_at, email, last_seen_at, name, plan, timezone, unsubscribed, user_id)"
)
BAD = campaign(
    "bad",
    [
        {"send": {"id": "a", "channel": "emial", "body": "hi"}},
        {"send": {"id": "b", "channel": "email", "subject": "Hi {{ user.nmae }}", "body": "x"}},
        {"send": {"id": "c", "channel": "email", "body": "{{ ''.__class__ }}"}},
        {"send": {"id": "d", "channel": "webhook", "url": "file:///etc/passwd", "body": "x"}},
        {
            "send": {
                "id": "e",
                "channel": "webhook",
                "body": "x",
                "data": {"url": "http://127.0.0.1/"},
            }
        },
        {"send": {"id": "f", "channel": "email", "template": "welcome.html"}},
    ],
    templates={"welcome.html": "<h1>Hello</h1>\n<p>{{ user['plna'] }}</p>"},
)
EXPECTED = [
    f"steps[0].send.channel: unknown channel 'emial' {KNOWN_CHANNELS}; did you mean 'email'?",
    f"steps[1].send.subject: unknown attribute 'nmae' in {{{{ user.nmae }}}} {KNOWN_ATTRIBUTES};"
    " did you mean 'name'?",
    "steps[2].send.body: unsafe: the sandbox refuses '__class__'",
    "steps[3].send.url: webhook url 'file:///etc/passwd' must be http(s)",
    "steps[4].send.data.url: webhook url must use https (host 127.0.0.1 is not allow-listed)",
    f"templates.welcome.html: line 2: unknown attribute 'plna' in {{{{ user['plna'] }}}}"
    f" {KNOWN_ATTRIBUTES}; did you mean 'plan'?",
]


def test_check_and_apply_list_every_problem_at_its_path_and_store_nothing(world: World):
    world.identify("u1", email="u1@example.com", name="Ada", plan="free")
    with pytest.raises(InvalidInput) as refused:
        check(parse_campaign(BAD), world.store, world.ws)
    assert [str(p) for p in refused.value.problems] == EXPECTED
    with pytest.raises(InvalidInput) as refused_apply:
        world.apply(BAD)
    assert [str(p) for p in refused_apply.value.problems] == EXPECTED
    assert world.store.campaign(world.ws, "bad") is None


def test_an_unknown_attribute_with_no_close_name_says_how_to_make_it_known(world: World):
    world.identify("u1", email="u1@example.com", plan="free")
    definition = campaign(
        "new", [{"send": {"id": "a", "channel": "email", "body": "{{ user.vip }}"}}]
    )
    with pytest.raises(InvalidInput) as refused:
        world.apply(definition)
    (problem,) = refused.value.problems
    assert problem.where == "steps[0].send.body"
    assert problem.message.endswith(
        "declare it (drumbeat attributes declare) or give it a default: | default('…')"
    )
    world.db.declare_attribute("vip", "boolean")
    assert world.apply(definition) == 1


def test_the_webhook_allow_list_lets_a_private_address_through(world: World, monkeypatch):
    hook = campaign(
        "hook",
        [{"send": {"id": "a", "channel": "webhook", "url": "http://127.0.0.1:9/", "body": "x"}}],
    )
    with pytest.raises(InvalidInput, match=r"host 127\.0\.0\.1 is not allow-listed"):
        plan_apply(parse_campaign(hook), world.store, world.ws)
    plan_apply(parse_campaign(hook), world.store, world.ws, webhook_allow=["127.0.0.0/8"])
    monkeypatch.setenv("DRUMBEAT_WEBHOOK_ALLOW", "127.0.0.1")  # the setting, by default
    check(parse_campaign(hook), world.store, world.ws)
    private = campaign(
        "private",
        [{"send": {"id": "a", "channel": "webhook", "url": "https://10.1.2.3/", "body": "x"}}],
    )
    with pytest.raises(
        InvalidInput, match=r"steps\[0\].send.url: webhook host 10.1.2.3 is private"
    ):
        check(parse_campaign(private), world.store, world.ws)


def test_a_client_checks_webhooks_against_its_own_allow_list(world: World, monkeypatch):
    monkeypatch.delenv("DRUMBEAT_WEBHOOK_ALLOW", raising=False)
    hook = campaign(
        "hook",
        [{"send": {"id": "a", "channel": "webhook", "url": "http://127.0.0.1:9/", "body": "x"}}],
    )
    with pytest.raises(InvalidInput, match=r"host 127\.0\.0\.1 is not allow-listed"):
        world.db.campaigns.check(hook)
    allowed = Drumbeat(config=world.config.model_copy(update={"webhook_allow": ["127.0.0.1"]}))
    try:
        assert [c.key for c in allowed.campaigns.check(hook)] == ["hook"]
        assert [a.key for a in allowed.campaigns.apply(hook)] == ["hook"]
    finally:
        allowed.close()


def test_templates_that_guard_what_may_be_missing_pass(world: World):
    world.identify("u1", email="u1@example.com", name="Ada", plan="free")
    body = (
        "Hi {{ user.nickname | default(user.name) }}{% if user.vip is defined %} (vip){% endif %}"
        " {{ user.get('team') or 'solo' }} {{ campaign.key }} {{ unsubscribe_url }}"
    )
    assert (
        world.apply(campaign("guarded", [{"send": {"id": "a", "channel": "email", "body": body}}]))
        == 1
    )


def test_a_user_lacking_an_attribute_gets_the_default_or_empty_text_counted(world: World):
    world.db.declare_attribute("name", "string")
    world.identify("u1", email="u1@example.com", plan="free", name="Ada", timezone="Europe/Paris")
    world.identify("u2", email="u2@example.com", plan="free")
    step = {
        "id": "hello",
        "channel": "email",
        "subject": "Hi {{ user.name | default('there') }}",
        "body": "Dear {{ user.name }}, in {{ user.timezone | default('UTC') }}.",
    }
    key = f"missing-{world.ws}"
    before = _missing(key, "hello", "name")
    world.apply(campaign(key, [{"send": step}]))
    world.tick()
    delivered = {m["user_id"]: (m["subject"], m["body"]) for m in world.delivered()}
    assert delivered == {
        "u1": ("Hi Ada", "Dear Ada, in Europe/Paris."),
        "u2": ("Hi there", "Dear , in UTC."),
    }
    rows = {r["user_id"]: r for r in world.outbox()}
    assert rows["u2"]["status"] == "sent"
    assert rows["u2"]["last_error"] == "sent without name (written empty)"
    assert rows["u1"]["last_error"] is None
    assert _missing(key, "hello", "name") == before + 1  # u2's subject had a default: once


def _missing(campaign_key: str, step: str, name: str) -> float:
    labels = {"campaign": campaign_key, "step": step, "name": name}
    return metrics.REGISTRY.get_sample_value("drumbeat_template_missing_total", labels) or 0.0


@pytest.mark.parametrize("command", ["check", "apply"])
def test_the_cli_refuses_with_exit_2_naming_each_problem(
    command: str, database_url: str, workspace_name: str, tmp_path: Path
):
    with Drumbeat(database_url, workspace=workspace_name) as db:
        db.identify("u1", {"email": "u1@example.com", "name": "Ada", "plan": "free"})
    templates = BAD["templates"]
    (tmp_path / "welcome.html").write_text(templates["welcome.html"])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in BAD.items() if k != "templates"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    done = subprocess.run(
        [sys.executable, "-m", "drumbeat", "--database-url", database_url,
         "--workspace", workspace_name, "campaign", command, str(path)],
        capture_output=True, text=True, env={**env, "COLUMNS": "300"}, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for line in EXPECTED:
        assert line in done.stderr
    with Drumbeat(database_url, workspace=workspace_name) as db:
        assert db.store.campaign(db.ws, "bad") is None
