"""Which revision of the schema this version of Drumbeat wants, read from the migrations
folder without Alembic or SQLAlchemy (the quick read-only path checks it too)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r'^(down_revision|revision) = "(\w+)"', re.M)


@cache
def head() -> str | None:
    """The newest revision: the one no other revision names as its parent (the chain is
    linear)."""
    revisions: set[str] = set()
    parents: set[str | None] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(script.read_text(encoding="utf-8")))
        revisions.add(found["revision"])
        parents.add(found.get("down_revision"))
    (newest,) = revisions - parents
    return newest
