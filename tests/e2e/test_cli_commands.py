"""The campaign and inspection commands as a person types them, in a real process, on
SQLite and PostgreSQL: readable lines and tables, several files applied as one, and one-line
refusals (exit 2, no traceback) for unknown campaigns and values outside a list."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HELLO = {"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hi"}}


def campaign(key: str, *steps: dict) -> str:
    doc = {
        "key": key,
        "name": key,
        "audience": {"attr": "plan", "eq": "free"},
        "steps": list(steps),
    }
    return json.dumps(doc)


@pytest.fixture
def cli(database_url, workspace_name, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    env |= {"COLUMNS": "200", "DRUMBEAT_OUTBOX_FILE": str(tmp_path / "sent.jsonl")}
    base = [sys.executable, "-m", "drumbeat", "--database-url", database_url]

    def run(*args: str, code: int = 0) -> str:
        done = subprocess.run(
            [*base, "--workspace", workspace_name, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.stdout if code == 0 else done.stderr

    return run


def three_free_users(cli, tmp_path):
    """u0, u1 and u2 on the free plan, imported with the clock at 2026-01-05."""
    users = tmp_path / "users.jsonl"
    users.write_text(
        "".join(f'{{"user_id": "u{i}", "traits": {{"plan": "free"}}}}\n' for i in range(3))
    )
    cli("clock", "--set", "2026-01-05T00:00:00Z")
    cli("import", "users", str(users))


def test_a_folder_applied_advanced_and_looked_at(cli, tmp_path):
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "drip.json").write_text(campaign("drip", HELLO, {"wait": "1d"}))
    (folder / "other.yaml").write_text(campaign("other", HELLO))
    three_free_users(cli, tmp_path)
    out = cli("campaign", "apply", "campaigns", "--activate")
    assert out.splitlines() == ["drip: version 1 stored, active", "other: version 1 stored, active"]

    out = cli("advance", "--to", "2026-01-05T12:00:00Z", "--every", "6h")
    assert out == (
        "clock at 2026-01-05T12:00:00Z after 2 ticks: 6 entered, 6 messages queued; sent: 6 sent\n"
    )
    stats = cli("stats")
    assert "{" not in stats and "│ sent   │         │ 6        │" in stats
    show = cli("campaign", "show", "drip")
    assert "members: 3 active\nactive members: 3 at steps[1]\n" in show
    assert "│ hello │ 3    │" in show
    members = cli("members", "drip", "--state", "active", "--limit", "2", "--format", "jsonl")
    assert [json.loads(line)["user_id"] for line in members.splitlines()] == ["u0", "u1"]
    outbox = cli("outbox", "--campaign", "other", "--status", "sent", "--format", "jsonl")
    assert len(outbox.splitlines()) == 3
    (tmp_path / "rule.json").write_text('{"attr": "plan", "eq": "free"}')
    sample = cli("audience", "sample", "rule.json", "-n", "1")
    assert "│ u0 " in sample and "│ plan=free " in sample and "{" not in sample


def test_one_bad_file_refuses_every_file_and_says_where(cli, tmp_path):
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "good.json").write_text(campaign("good", HELLO))
    hook = {"send": {"id": "hook", "channel": "webhook", "subject": "x", "body": "x"}}
    (folder / "hook.json").write_text(campaign("hook", HELLO, hook))
    (folder / "trial.json").write_text(campaign("trial", HELLO, {"wait": "soon"}))
    err = cli("campaign", "apply", "campaigns", code=2)
    assert "campaigns/hook.json: steps[1].send.url: a webhook step needs a url" in err
    assert "campaigns/trial.json: steps[1].wait.for: expected a duration" in err
    assert "good.json" not in err
    assert "good" not in cli("campaign", "list")
    assert "campaigns/trial.json: steps[1].wait.for" in cli(
        "campaign", "check", "campaigns", code=2
    )


def test_unknown_campaigns_and_values_are_refused_in_one_line(cli, workspace_name, tmp_path):
    (tmp_path / "a.json").write_text(campaign("alpha", HELLO))
    (tmp_path / "b.json").write_text(campaign("beta", HELLO))
    cli("campaign", "apply", "a.json", "b.json")
    missing = f"no campaign 'nope' in workspace '{workspace_name}' (campaigns: alpha, beta)"
    for args in (
        ("members", "nope"),
        ("outbox", "--campaign", "nope"),
        ("campaign", "resume", "nope"),
        ("campaign", "archive", "nope"),
        ("campaign", "pause", "nope"),
        ("campaign", "show", "nope"),
    ):
        assert missing in cli(*args, code=2), args
    for args, allowed in (
        (("members", "alpha", "--state", "gone"), "'active', 'converted', 'left_audience'"),
        (("outbox", "--status", "lost"), "'pending', 'sending', 'sent', 'failed', 'dead'"),
        (("campaign", "list", "--format", "csv"), "'table', 'jsonl'"),
    ):
        assert allowed in cli(*args, code=2), args
    assert "--state <active|converted|left_audience|inactive|completed>" in cli("members", "--help")


def test_advance_no_send_leaves_the_messages_queued_for_the_next(cli, tmp_path):
    (tmp_path / "drip.json").write_text(campaign("drip", HELLO))
    three_free_users(cli, tmp_path)
    cli("campaign", "apply", "drip.json", "--activate")

    out = cli("advance", "--to", "2026-01-05T06:00:00Z", "--every", "6h", "--no-send")
    assert out == (
        "clock at 2026-01-05T06:00:00Z after 1 ticks: 3 entered, 3 messages queued; "
        "sent: nothing (--no-send)\n"
    )
    assert len(cli("outbox", "--status", "pending", "--format", "jsonl").splitlines()) == 3
    assert not (tmp_path / "sent.jsonl").exists()

    out = cli("advance", "--to", "2026-01-05T12:00:00Z", "--every", "6h")
    assert out.endswith("0 messages queued; sent: 3 sent\n")
    assert len((tmp_path / "sent.jsonl").read_text().splitlines()) == 3
