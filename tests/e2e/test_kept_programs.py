"""A runner keeps its campaigns' rows and compiled programs across ticks, and reads them again
when its workspace's revision moves on: a change made by another process (a second Drumbeat
on the same database: a pause, a resume, a new version, an archive, an attribute type, a
frequency cap) shows at the runner's next tick. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drumbeat.bench.statements import counted
from drumbeat.client import Drumbeat
from drumbeat.engine.timing import FrequencyCap
from drumbeat.model.attributes import AttrType
from drumbeat.pipeline.programs import CAP_SETTING
from tests.e2e.helpers import campaign, send, wait
from tests.world import DAY, World


@pytest.fixture
def other(world: World) -> Iterator[Drumbeat]:
    """Another process's Drumbeat: its own store and connections, the same workspace."""
    db = Drumbeat(config=world.config)
    try:
        yield db
    finally:
        db.close()


def tick(world: World) -> None:
    world.clock.set(world.now() + 60)
    world.tick()


def test_a_pause_resume_new_version_or_archive_elsewhere_shows_at_the_next_tick(world, other):
    world.ticks_only()  # the tick, not the event path, decides who enters
    world.apply(campaign("drip", [wait("1d", "w"), send("hello")]))
    world.identify("u1", plan="free")
    tick(world)
    assert world.member("drip", "u1") is not None
    programs = world.runner.programs

    other.campaigns.pause("drip")
    world.identify("u2", plan="free")
    tick(world)
    assert programs.get(world.ws, "drip") is None
    assert world.member("drip", "u2") is None  # paused: no one enters

    other.campaigns.resume("drip")
    tick(world)
    assert world.member("drip", "u2") is not None

    other.campaigns.apply(campaign("drip", [wait("1m", "w"), send("hello")]))
    tick(world)
    row = programs.row(world.ws, "drip")
    assert row is not None and row.version == 2
    assert world.steps_sent("u1") == ["hello"]  # version 2's wait is over

    other.campaigns.archive("drip")
    tick(world)
    assert programs.get(world.ws, "drip") is None
    assert programs.rows(world.ws) == []


def test_an_attribute_type_or_a_frequency_cap_set_elsewhere_compiles_again(world, other):
    world.apply(campaign("seats", [send("hi")], audience={"attr": "seats", "gte": 5}))
    tick(world)
    programs = world.runner.programs
    first = programs.audience(world.ws, "seats")
    tick(world)
    assert programs.audience(world.ws, "seats") is first  # nothing changed: kept

    other.store.declare_attribute(other.ws, "seats", AttrType.NUMBER)
    tick(world)
    assert programs.audience(world.ws, "seats") is not first

    other.store.set_setting(other.ws, CAP_SETTING, {"limit": 1, "per": DAY})
    tick(world)
    program = programs.get(world.ws, "seats")
    assert program is not None and program.cap == FrequencyCap(1, DAY)


def test_an_idle_tick_reads_no_campaign(world):
    world.apply(campaign("drip", [wait("30d"), send("hello")]))
    world.identify("u1", plan="free")
    for _ in range(3):
        tick(world)
    world.clock.set(world.now() + 60)
    with counted(world.store.engine) as seen:
        world.tick()
    read = " ".join(seen.texts).lower()
    assert "from workspaces" in read  # the revisions, one row a workspace
    assert "select campaigns." not in read  # no campaign row
