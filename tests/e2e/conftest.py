"""End-to-end fixtures: the `world` of tests/conftest.py, whose campaigns are archived when the
test ends. PostgreSQL tests share one session database, and the planner plans every active
campaign of every workspace: without this, each test would also tick the campaigns of all the
tests before it (slower with every test, and their messages would reach this test's file)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.helpers import retire
from tests.world import World


@pytest.fixture
def world(world: World) -> Iterator[World]:
    try:
        yield world
    finally:
        retire(world)
