"""`drumbeat --help` and `--version` stay fast: they import no store, no models, no
templates (each command imports those when it runs). An assertion on imports, not on time."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

HEAVY = {"sqlalchemy", "pydantic", "jinja2", "psycopg", "yaml"}


def imported(*args: str) -> set[str]:
    """The top-level packages `python -m drumbeat ARGS` imports (from -X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "drumbeat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+([\w.]+)$", done.stderr, re.M)
    assert "drumbeat.cli.app" in names  # the output was read
    return {name.split(".")[0] for name in names}


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


def test_version_says_the_version():
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "drumbeat", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"drumbeat {version('drumbeat')}\n"
