"""`drumbeat run` as a user runs it: a process on the real clock, stopped by SIGTERM or
Ctrl-C after the tick under way (exit 0), and started again where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from drumbeat.campaigns import apply, plan_apply
from drumbeat.client import Drumbeat
from drumbeat.model.campaign import parse_campaign
from drumbeat.pipeline.clock import CLOCK_SETTING, CLOCK_WORKSPACE, TICK_SETTING
from drumbeat.store import open_store
from drumbeat.store.schema import batches
from tests.e2e.helpers import campaign, send, wait
from tests.e2e.running import (
    DRUMBEAT,
    WORKSPACE,
    delivered,
    environment,
    outbox_rows,
    own_store,
    prepare,
    start,
    wait_for,
)
from tests.integration.test_delivery_faults import CountingServer

USERS = 20
WAIT = 3.0  # real seconds between the two messages


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    with own_store(database_url) as own:
        yield own


def last_tick(url: str) -> dict[str, object]:
    tick: dict[str, object] = setting(url, TICK_SETTING) or {}
    return tick


def setting(url: str, name: str) -> object:
    store = open_store(url, migrate=False)
    try:
        return store.get_setting(CLOCK_WORKSPACE, name)
    finally:
        store.close()


def steps(outbox_file: Path, step: str) -> int:
    return sum(1 for m in delivered(outbox_file) if m["step"] == step)


def test_run_stops_on_sigterm_and_a_second_start_goes_on(url: str, tmp_path: Path) -> None:
    prepare(url, [send("one"), wait(f"{WAIT:g}s"), send("two")], USERS)
    messages, log = tmp_path / "messages.jsonl", tmp_path / "run.log"
    env = environment(url, messages)

    # a minute between ticks: the stop must end the wait, not sit it out
    first = start(["run", "--interval", "60", "--workers", "1"], env, log)
    wait_for(
        lambda: steps(messages, "one") == USERS and last_tick(url).get("done"),
        "the first messages, and the tick that sent them done",
        first,
    )
    first.send_signal(signal.SIGTERM)  # to the main process only, as `kill` does
    assert first.wait(timeout=20) == 0, log.read_text()
    assert steps(messages, "two") < USERS, "the first run sent everything: nothing to go on"

    second = start(["run", "--interval", "0.2", "--workers", "2"], env, log)
    wait_for(lambda: steps(messages, "two") == USERS, "the second messages", second)
    os.killpg(second.pid, signal.SIGINT)  # Ctrl-C: the whole group, worker processes too
    assert second.wait(timeout=30) == 0, log.read_text()

    text = log.read_text()
    assert "Traceback" not in text and text.count("stopped") == 2, text
    sent = Counter(m["message_id"] for m in delivered(messages))
    assert len(sent) == 2 * USERS and set(sent.values()) == {1}  # every message, once
    rows = outbox_rows(url)
    assert len(rows) == 2 * USERS and {r["status"] for r in rows} == {"sent"}


def test_two_runs_on_one_store_deliver_each_webhook_once(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `drumbeat run` processes share a store and a slow webhook: claims outlive the
    lease unless it is kept while sending, results are fenced, and every call carries its
    outbox key, which the server counts."""
    users = 60
    monkeypatch.setenv("DRUMBEAT_WEBHOOK_ALLOW", "127.0.0.1")
    with CountingServer(delay=0.1) as server:
        prepare(url, [send("hook", "webhook", url=server.url())], users)
        log = tmp_path / "run.log"
        # claims of 20 calls, 2 at a time: a second a claim, twice the lease
        env = environment(
            url,
            tmp_path / "messages.jsonl",
            webhook_allow="127.0.0.1",
            batch_size="20",
            webhook_concurrency="2",
            send_lease="0.5",
        )
        runs = [start(["run", "--interval", "0.2", "--workers", "1"], env, log) for _ in "ab"]
        wait_for(
            lambda: (
                {r["status"] for r in outbox_rows(url)} == {"sent"}
                and len(outbox_rows(url)) == users
            ),
            "every webhook sent",
            runs[0],
        )
        for run in runs:
            run.send_signal(signal.SIGTERM)
        for run in runs:
            assert run.wait(timeout=30) == 0, log.read_text()
    assert len(server.keys) == users
    assert [key for key, count in server.keys.items() if count > 1] == []
    assert "Traceback" not in log.read_text()


def test_run_stops_when_a_virtual_clock_is_set_under_it_and_leaves_that_clock(
    url: str, tmp_path: Path
) -> None:
    """`drumbeat clock --set` while `drumbeat run` ticks: the run stops with the reason
    (its ticks would otherwise move the virtual clock to real time), the clock stays set."""
    prepare(url, [send("one")], USERS)
    messages, log = tmp_path / "messages.jsonl", tmp_path / "run.log"
    env = environment(url, messages)
    running = start(["run", "--interval", "0.1", "--workers", "1"], env, log)
    wait_for(lambda: last_tick(url).get("done"), "a tick done", running)
    subprocess.run(
        [DRUMBEAT, "clock", "--set", "2030-01-01T00:00:00Z"], env=env, check=True, timeout=60
    )
    assert running.wait(timeout=30) != 0, log.read_text()
    assert "runs on a virtual clock: `drumbeat clock --real` first" in log.read_text()
    assert setting(url, CLOCK_SETTING) == 1893456000.0  # 2030-01-01, not moved since


def batch_owners(url: str, campaign_key: str) -> set[tuple[str, str, str | None]]:
    """(lane, status, owning process "host:pid") of the campaign's batches."""
    b = batches.c
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(b.lane, b.status, b.owner).where(b.campaign_key == campaign_key)
            )
            return {
                (lane, status, ":".join((owner or "").split(":")[:2]))
                for lane, status, owner in rows
            }
    finally:
        store.close()


def group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_run_works_the_slow_lane_in_processes_of_its_own_and_stops_them(
    url: str, tmp_path: Path
) -> None:
    """A campaign pinned to the slow lane beside a fast one, `drumbeat run` with worker
    processes for each lane: the slow lane's batches are worked by its own background
    processes, every message is sent once, and SIGTERM to the main process alone stops the
    run and all its workers (exit 0, nothing left in its process group)."""
    prepare(url, [send("fast")], USERS)
    with Drumbeat(url, workspace=WORKSPACE) as db:
        slow = parse_campaign(campaign("s", [send("slow")], lane="slow"))
        apply(plan_apply(slow, db.store, db.ws), db.store, db.ws, db.clock(), activate=True)
    messages, log = tmp_path / "messages.jsonl", tmp_path / "run.log"
    env = environment(url, messages, slow_workers="2", batch_size="5")
    running = start(["run", "--interval", "0.2", "--workers", "2"], env, log)
    wait_for(
        lambda: steps(messages, "fast") == USERS and steps(messages, "slow") == USERS,
        "both campaigns' messages",
        running,
    )
    running.send_signal(signal.SIGTERM)  # the main process only, as `kill` does
    assert running.wait(timeout=30) == 0, log.read_text()
    wait_for(lambda: group_gone(running.pid), "the lanes' worker processes to stop", deadline=30)

    assert "Traceback" not in log.read_text()
    sent = Counter(m["message_id"] for m in delivered(messages))
    assert len(sent) == 2 * USERS and set(sent.values()) == {1}
    slow_batches = batch_owners(url, "s")
    assert {(lane, status) for lane, status, _ in slow_batches} == {("slow", "done")}
    owners = {owner for _, _, owner in slow_batches}
    assert owners and all(owner.split(":")[1] != str(running.pid) for owner in owners), owners
