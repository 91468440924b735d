"""`drumbeat batches [retry]` as a person types it, in a real process, on SQLite and
PostgreSQL: dead batches listed (a table, JSON lines), retried and run by the next advance,
and one-line refusals (exit 2) that change nothing."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_cli_commands import cli  # noqa: F401  (the fixture)
from tests.e2e.test_dead_batches import EVERYONE, drain, populate, sent, with_dead_batch
from tests.world import World

ERROR = "worker process 4242 exited with code -9: " + "the template raised " * 10


@pytest.fixture
def world(world: World) -> World:
    populate(world)
    drain(world)  # what other tests' workspaces left in the lane (one PostgreSQL database)
    return with_dead_batch(world, ERROR)


def listed(cli, *options: str) -> list[dict]:  # noqa: F811
    return [json.loads(line) for line in cli("batches", "--format", "jsonl", *options).splitlines()]


def test_dead_batches_listed_as_a_table_and_as_json_lines(cli, world):  # noqa: F811
    [dead] = listed(cli, "--status", "dead")
    assert dead == {
        "id": dead["id"],
        "campaign": "drip",
        "lane": "fast",
        "kind": "enter",
        "users": 10,
        "status": "dead",
        "attempts": 3,
        "created_at": "2026-01-05T00:00:00Z",
        "error": ERROR,  # whole
    }
    assert [b["status"] for b in listed(cli, "--campaign", "drip", "--limit", "2")] == [
        "dead",
        "done",
    ]
    [row] = rows(cli("batches", "--status", "dead"))
    assert row == [*map(str, list(dead.values())[:8]), ERROR[:59] + "…"]  # cut to fit a table
    assert ["dead", "1", ""] in rows(cli("stats"))


def rows(table: str) -> list[list[str]]:
    """A Rich table's body rows, cell by cell."""
    lines = table.splitlines()
    return [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]


def test_retried_from_the_command_line_and_run_by_the_next_advance(cli, world):  # noqa: F811
    [dead] = world.db.batches(status="dead")
    preview = cli("batches", "retry", "--all-dead", "--dry-run")
    assert rows(preview)[0][:6] == [str(dead.id), "drip", "fast", "enter", "10", "dead"]
    assert f"would retry 1 batches: {dead.id} (nothing changed)" in preview
    assert world.db.batches(status="dead") == [dead]
    done = cli("batches", "retry", str(dead.id))
    assert f"retried 1 batches: {dead.id}; the next tick runs them" in done
    cli("advance", "--to", "2026-01-05T01:00:00Z")
    assert {b.status for b in world.db.batches()} == {"done"}
    assert sorted(sent(world)) == sorted(("one", u) for u in EVERYONE)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("retry", "{dead}", "999999"), "error: invalid batches to retry: batch 999999: not in"),
        (("retry", "{done}"), "error: invalid batches to retry: batch {done} is done, not dead"),
        (("retry",), "by id, or all dead ones, not both"),
        (("retry", "{dead}", "--all-dead"), "by id, or all dead ones, not both"),
        (("--status", "dead", "retry", "{dead}"), "--status: options of the listing, not of"),
    ],
)
def test_a_refusal_is_one_line_and_changes_nothing(cli, world, args, says):  # noqa: F811
    before = world.db.batches()
    ids = {"dead": before[0].id, "done": before[1].id}
    refused = cli("batches", *(a.format(**ids) for a in args), code=2)
    assert says.format(**ids) in refused
    assert refused.count("\n") == 1
    assert world.db.batches() == before
