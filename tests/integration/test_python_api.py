"""The Python API a program uses (`Drumbeat.campaigns`, `advance`, `outbox`, `members`), on
SQLite and PostgreSQL: what `drumbeat campaign …`, `advance`, `outbox` and `members` call."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from sqlalchemy.exc import IntegrityError

from drumbeat.choices import MemberState
from drumbeat.client import Drumbeat
from drumbeat.engine.member import State
from drumbeat.errors import InvalidInput
from drumbeat.store.campaigns import CampaignVersion
from drumbeat.views import Advanced, Applied, CampaignSummary, Membership, Message

HELLO = {
    "send": {"id": "hello", "channel": "email", "subject": "Hi {{ user.email }}", "body": "Hi"}
}


def definition(key: str, *steps: dict, **extra: object) -> dict:
    audience = {"attr": "plan", "eq": "free"}
    return {
        "key": key,
        "name": key.title(),
        "audience": audience,
        "steps": list(steps) or [HELLO],
        **extra,
    }


def write(folder: Path, name: str, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(doc) if path.suffix == ".json" else yaml.safe_dump(doc))
    return path


def test_a_folder_of_campaigns_is_applied_together(client, tmp_path):
    folder = tmp_path / "campaigns"
    write(folder, "trial.yaml", definition("trial"))
    write(folder, "winback.yml", definition("win-back", HELLO, {"wait": "2d"}))
    (folder / "notes.txt").write_text("not a campaign")
    client.identify("u1", {"plan": "free", "email": "u1@example.com"})
    checked = client.campaigns.check(folder)
    assert [(c.key, c.audience) for c in checked] == [("trial", 1), ("win-back", 1)]
    assert checked[1].steps == [
        "send hello via email: 'Hi {{ user.email }}'",
        "wait 2d  [steps[1]]",
    ]
    assert client.campaigns.list() == []  # check stores nothing

    applied = client.campaigns.apply(folder, activate=True)
    assert applied == [
        Applied(str(folder / "trial.yaml"), "trial", 1, "active"),
        Applied(str(folder / "winback.yml"), "win-back", 1, "active"),
    ]
    assert client.campaigns.list() == [
        CampaignSummary("trial", "Trial", "active", 1, 0, 0, "fast", "default"),
        CampaignSummary("win-back", "Win-Back", "active", 1, 0, 0, "fast", "default"),
    ]


def test_one_bad_file_refuses_them_all_each_problem_at_its_file(client, tmp_path):
    folder = tmp_path / "campaigns"
    good = write(folder, "a-good.yaml", definition("good"))
    bad_wait = write(folder, "b-wait.yaml", definition("bad-wait", HELLO, {"wait": "soon"}))
    webhook = {"send": {"id": "hook", "channel": "webhook", "subject": "x", "body": "x"}}
    no_url = write(folder, "c-hook.json", definition("hook", HELLO, webhook))
    with pytest.raises(InvalidInput) as refused:
        client.campaigns.apply([good, bad_wait, no_url, tmp_path / "missing.yaml"])
    text = str(refused.value)
    assert f"{bad_wait}: steps[1].wait.for: expected a duration" in text
    assert f"{no_url}: steps[1].send.url: a webhook step needs a url" in text
    assert f"{tmp_path / 'missing.yaml'}: No such file or directory" in text
    assert str(good) not in text
    assert client.campaigns.list() == []  # the good one was not stored either


def test_two_definitions_of_one_key_are_refused(client):
    with pytest.raises(InvalidInput, match=r"\[1\]: key: 'same' is also in \[0\]"):
        client.campaigns.apply([definition("same"), definition("same")])
    assert client.campaigns.list() == []


def test_versions_are_stored_in_one_transaction(client):
    """A store failure in the second version rolls the first back too."""
    store, ws = client.store, client.ws
    good = CampaignVersion("good", "Good", definition("good"), "draft")
    broken = CampaignVersion("broken", None, definition("broken"), "draft")  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        store.save_versions(ws, [good, broken], client.clock())
    assert store.campaigns(ws) == []


def test_a_new_version_says_who_moves_and_a_dry_run_stores_nothing(client):
    client.campaigns.apply(definition("drip"), activate=True)
    v2 = definition("drip", HELLO, {"wait": "1d"})
    (planned,) = client.campaigns.apply(v2, dry_run=True)
    assert (planned.version, planned.status) == (2, None)
    assert client.campaigns.show("drip").version == 1
    (stored,) = client.campaigns.apply(v2)
    assert (stored.source, stored.version, stored.status) == ("[0]", 2, "active")


def test_status_changes_and_unknown_keys(client):
    client.campaigns.apply([definition("alpha"), definition("beta")])
    client.campaigns.resume("alpha")
    client.campaigns.pause("alpha")
    client.campaigns.archive("beta")
    assert [(c.key, c.status) for c in client.campaigns.list()] == [
        ("alpha", "paused"),
        ("beta", "archived"),
    ]
    workspace = client.config.workspace
    missing = f"no campaign 'nope' in workspace '{workspace}' \\(campaigns: alpha, beta\\)"
    for call in (
        lambda: client.campaigns.pause("nope"),
        lambda: client.campaigns.resume("nope"),
        lambda: client.campaigns.archive("nope"),
        lambda: client.campaigns.show("nope"),
        lambda: client.members("nope"),
        lambda: client.outbox(campaign="nope"),
    ):
        with pytest.raises(InvalidInput, match=missing):
            call()


def test_bad_filters_name_the_allowed_values(client):
    client.campaigns.apply(definition("alpha"))
    with pytest.raises(InvalidInput, match="state 'gone': use one of active, converted, left_"):
        client.members("alpha", "gone")
    with pytest.raises(InvalidInput, match="status 'lost': use one of pending, sending, sent,"):
        client.outbox(status="lost")


def test_advance_runs_the_flow_and_the_records_show_it(database_url, workspace_name, tmp_path):
    db = Drumbeat(database_url, workspace=workspace_name)
    try:
        db.config = db.config.model_copy(update={"outbox_file": str(tmp_path / "sent.jsonl")})
        db.clock.set(1_767_571_200.0)  # 2026-01-05T00:00:00Z, the store's virtual clock
        for i in range(3):
            db.identify(f"u{i}", {"plan": "free", "email": f"u{i}@example.com"})
        db.campaigns.apply(definition("drip", HELLO, {"wait": "1d"}), activate=True)
        ticks: list[float] = []
        done = db.advance("2026-01-05T12:00:00Z", "4h", on_tick=lambda _, end: ticks.append(end))
        assert done == Advanced(1_767_571_200.0 + 12 * 3600, 3, 3, 3, {"sent": 3})
        assert ticks == [1_767_571_200.0 + h * 3600 for h in (4, 8, 12)]
        messages = db.outbox(campaign="drip", status="sent", limit=2)
        assert [type(m) for m in messages] == [Message, Message]
        assert asdict(messages[0]) | {"created_at": 0, "sent_at": 0} == {
            "id": messages[0].id,
            "campaign": "drip",
            "step": "hello",
            "user_id": "u0",
            "channel": "email",
            "status": "sent",
            "attempts": 1,
            "created_at": 0,
            "sent_at": 0,
            "error": None,
        }
        members = db.members("drip", "active", limit=None)
        assert [m.user_id for m in members] == ["u0", "u1", "u2"]
        assert members[0] == Membership(
            "u0", "active", "steps[1]", 1, members[0].entered_at, None, None
        )
        assert db.campaigns.show("drip").messages == {"hello": {"sent": 3}}
        with pytest.raises(InvalidInput, match="to: 2026-01-01T00:00:00Z is before the virtual"):
            db.advance("2026-01-01T00:00:00Z")
        with pytest.raises(InvalidInput, match="every: must be longer than zero"):
            db.advance("2026-02-01T00:00:00Z", 0)
    finally:
        db.close()


def test_advance_without_sending_leaves_the_messages_queued(database_url, workspace_name):
    db = Drumbeat(database_url, workspace=workspace_name)
    try:
        db.clock.set(1_767_571_200.0)  # 2026-01-05T00:00:00Z, the store's virtual clock
        for i in range(3):
            db.identify(f"u{i}", {"plan": "free", "email": f"u{i}@example.com"})
        db.campaigns.apply(definition("drip", HELLO, {"wait": "1d"}), activate=True)
        done = db.advance("2026-01-05T08:00:00Z", "4h", send=False)
        assert done == Advanced(1_767_571_200.0 + 8 * 3600, 2, 3, 3, {})
        queued = db.outbox(campaign="drip")
        assert [(m.status, m.attempts) for m in queued] == [("pending", 0)] * 3
    finally:
        db.close()


def test_member_states_are_the_engines():
    assert [s.value for s in MemberState] == [s.value for s in State]
