"""The demo writes only to its own store: DRUMBEAT_DATABASE_URL does not send it into a real
one, and a store named explicitly that holds users it did not make is refused untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from drumbeat.client import Drumbeat
from drumbeat.demo.claim import DEMO_MARK
from drumbeat.pipeline.clock import CLOCK_SETTING, CLOCK_WORKSPACE
from drumbeat.store import open_store
from drumbeat.store.schema import users

DRUMBEAT = [sys.executable, "-m", "drumbeat"]
SMALL = ("--users", "30", "--days", "1")


def drumbeat(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    return subprocess.run(
        [*DRUMBEAT, *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def a_real_store(url: str, workspace: str) -> None:
    with Drumbeat(url, workspace=workspace) as db:
        db.identify("customer-1", {"email": "customer@example.com", "plan": "paid"})


def snapshot(url: str) -> dict[str, Any]:
    """What the demo would change: users (all workspaces), campaigns, its mark, the clock."""
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(users)).scalar_one()
        return {
            "users": count,
            "campaigns": [(c.workspace_id, c.key, c.status) for c in store.campaigns()],
            "mark": store.get_setting(CLOCK_WORKSPACE, DEMO_MARK),
            "clock": store.get_setting(CLOCK_WORKSPACE, CLOCK_SETTING),
        }
    finally:
        store.close()


def test_the_demo_leaves_the_store_of_DRUMBEAT_DATABASE_URL_alone(
    tmp_path, database_url, workspace_name
):
    a_real_store(database_url, workspace_name)
    before = snapshot(database_url)
    done = drumbeat(tmp_path, "demo", *SMALL, DRUMBEAT_DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    assert "store: sqlite:///./drumbeat-demo.db" in done.stdout
    assert (tmp_path / "drumbeat-demo.db").exists()
    assert snapshot(database_url) == before
    assert before["mark"] is None


def test_the_demo_refuses_a_store_with_users_it_did_not_make(
    tmp_path, database_url, workspace_name
):
    a_real_store(database_url, workspace_name)
    before = snapshot(database_url)
    for args in (
        ("--database-url", database_url, "demo"),
        ("demo", "--database-url", database_url),
    ):
        done = drumbeat(tmp_path, *args, *SMALL)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "it holds users the demo did not make" in done.stderr
        assert snapshot(database_url) == before
    assert not (tmp_path / "drumbeat-demo.db").exists()


def test_the_demo_runs_in_a_new_store_given_to_it_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'shown.db'}"
    done = drumbeat(tmp_path, "demo", "--database-url", url, *SMALL)
    assert done.returncode == 0, done.stderr
    after = snapshot(url)
    assert after["users"] == 30 and after["mark"] is True and len(after["campaigns"]) == 3
    again = drumbeat(tmp_path, "demo", "--database-url", url, *SMALL)
    assert again.returncode == 2 and "it holds campaigns already" in again.stderr
    assert snapshot(url) == after
