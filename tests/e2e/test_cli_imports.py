"""`drumbeat --help` and `--version` stay fast: they import no store, no models, no
templates (each command imports those when it runs); `clock` and `stats` on a store ready
as it stands read it through the plain driver, without SQLAlchemy or pydantic, and print
what the full path prints. Assertions on imports, not on time (docs/cli.md, Start-up)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from drumbeat.histogram import Histogram
from drumbeat.store import open_store
from drumbeat.timing_names import GLOBAL
from tests.contract.test_readonly import _fill
from tests.e2e.running import own_store

HEAVY = {"sqlalchemy", "pydantic", "jinja2", "psycopg", "yaml"}
# and what a command that only reads a little need not import either
NOT_TO_READ = HEAVY | {"prometheus_client", "alembic", "pydantic_settings"}


def run(*args: str) -> tuple[str, set[str]]:
    """What `python -m drumbeat ARGS` prints, and the top-level packages it imports (from
    -X importtime)."""
    shown, names = modules("-m", "drumbeat", *args)
    assert "drumbeat.cli.app" in names  # the output was read
    return shown, {name.split(".")[0] for name in names}


def modules(*args: str) -> tuple[str, set[str]]:
    """What `python ARGS` prints, and every module it imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+([\w.]+)$", done.stderr, re.M)
    return done.stdout, set(names)


def imported(*args: str) -> set[str]:
    return run(*args)[1]


@pytest.mark.parametrize("args", [("--help",), ("--version",)], ids=" ".join)
def test_help_and_version_import_nothing_heavy(args):
    assert imported(*args) & HEAVY == set()


@pytest.mark.parametrize("args", [("campaign", "--help"), ("members", "--help")], ids=" ".join)
def test_a_commands_help_imports_no_store(args):
    """Typer itself coerces the global options' values with pydantic before a command's
    --help: only pydantic may come in."""
    assert imported(*args) & HEAVY <= {"pydantic"}


def test_a_command_imports_what_it_needs():
    """The check above can fail: a command that runs does import the store."""
    assert {"sqlalchemy", "pydantic"} <= imported("--database-url", "sqlite://", "clock")


@pytest.fixture
def ready(database_url: str, workspace_name: str) -> Iterator[tuple[str, ...]]:
    """Options naming a migrated store with a workspace of batches, messages, a virtual
    clock and timings of this minute."""
    with own_store(database_url) as url:
        store = open_store(url)
        ws = store.workspace_id(workspace_name)
        _fill(store, ws, store.workspace_id(f"{workspace_name}-other"))
        timing = Histogram()
        timing.add(0.25, items=7)
        store.add_timings({(time.time() // 60 * 60, GLOBAL, "query", "store.q"): timing})
        store.close()
        yield ("--database-url", url, "--workspace", workspace_name)


QUICK = [("clock",), ("stats",), ("stats", "--format", "json"), ("stats", "--by", "lane")]


@pytest.mark.parametrize("command", QUICK, ids=" ".join)
def test_clock_and_stats_read_a_ready_store_quickly_and_print_the_same(
    ready: tuple[str, ...], command: tuple[str, ...]
) -> None:
    driver = {"psycopg"} if ready[1].startswith("postgresql") else set()
    quick, names = run(*ready, *command)
    assert names & NOT_TO_READ <= driver
    # another global option: the full settings check it, then the full store is read
    full, names = run(*ready, "--batch-size", "1000", *command)
    assert {"sqlalchemy", "pydantic"} <= names
    assert quick == full


def test_clock_and_stats_make_what_is_missing_as_before(tmp_path) -> None:
    """No store yet, or a workspace not there: the full path makes them, as it always did."""
    url = f"sqlite:///{tmp_path / 'drumbeat.db'}"
    shown, names = run("--database-url", url, "clock")
    assert shown.startswith("real clock: ") and "sqlalchemy" in names
    stats, names = run("--database-url", url, "--workspace", "new", "stats", "--format", "json")
    assert '"batches_by_status": {}' in stats and "sqlalchemy" in names
    again, names = run("--database-url", url, "--workspace", "new", "clock")
    assert again.startswith("real clock: ") and "sqlalchemy" not in names


def test_version_says_the_version():
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "drumbeat", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"drumbeat {version('drumbeat')}\n"


def test_command_modules_do_not_postpone_annotations() -> None:
    """Typer would evaluate every string annotation again at each start (cli/app.py)."""
    import typer

    from drumbeat.cli.app import app

    def callbacks(group: typer.Typer) -> Iterator[object]:
        yield group.registered_callback.callback if group.registered_callback else None
        for command in group.registered_commands:
            yield command.callback
        for sub in group.registered_groups:
            assert sub.typer_instance is not None
            yield from callbacks(sub.typer_instance)

    modules = {sys.modules[f.__module__] for f in callbacks(app) if f is not None}
    assert len(modules) > 10
    postponed = sorted(m.__name__ for m in modules if "annotations" in vars(m))
    assert postponed == []


@pytest.mark.parametrize("webhook", [False, True], ids=["email", "webhook"])
def test_a_campaign_is_checked_without_the_http_client_unless_it_sends_webhooks(
    tmp_path, webhook: bool
) -> None:
    """The webhook guard (and httpx with it, ~80 ms of a start) is loaded for a campaign
    with a webhook step only; the check with a webhook step shows this one can fail."""
    step: dict[str, object] = {"id": "one", "channel": "email", "subject": "Hi", "body": "Hi"}
    if webhook:
        step = {
            "id": "one",
            "channel": "webhook",
            "url": "https://hooks.example.com/a",
            "body": "{}",
        }
    campaign = {"key": "welcome", "name": "W", "audience": {"attr": "plan", "eq": "free"}}
    (tmp_path / "c.json").write_text(json.dumps({**campaign, "steps": [{"send": step}]}))
    store = ("--database-url", f"sqlite:///{tmp_path / 'd.db'}")
    assert ("httpx" in imported(*store, "campaign", "apply", str(tmp_path / "c.json"))) is webhook


def test_a_users_import_loads_no_engine_and_its_check_processes_no_store(tmp_path) -> None:
    """`import users` needs neither the engine nor the campaigns' model nor Prometheus, and
    a check process (`ingest/check_processes.py`, two of them start with each big import)
    neither SQLAlchemy nor the store: each would cost every import its time to load."""
    users = tmp_path / "users.jsonl"
    users.write_text(json.dumps({"user_id": "u1", "traits": {"plan": "free"}}) + "\n")
    store = ("--database-url", f"sqlite:///{tmp_path / 'd.db'}")
    run(*store, "clock")  # the store made (its migrations load the model)
    shown, names = modules("-m", "drumbeat", *store, "import", "users", str(users))
    assert "imported 1 users" in shown and "drumbeat.ingest.user_import" in names
    assert not {"drumbeat.engine.machine", "drumbeat.model.campaign"} & names
    assert "prometheus_client" not in names  # no metrics served: none fed (`metrics`)
    _, names = modules("-c", "import drumbeat.ingest.check_processes")
    assert "drumbeat.ingest.checking" in names
    assert not {name.split(".")[0] for name in names} & NOT_TO_READ
    assert not {"drumbeat.store.base", "drumbeat.metrics"} & names
