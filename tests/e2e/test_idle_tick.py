"""A tick's cost follows change, not the number of campaigns: an idle tick sends as many
statements with 50 active campaigns as with 5, moves no watermark, and a new event looks at
the campaigns that read its name only. Counted, not timed (`drumbeat bench idle` times it)."""

from __future__ import annotations

import difflib

from drumbeat.bench.statements import counted
from drumbeat.model.attributes import AttrType
from drumbeat.pipeline.programs import Programs
from tests.e2e.helpers import campaign, send, wait
from tests.world import HOUR, World


def add_campaigns(world: World, start: int, stop: int) -> None:
    """Campaigns whose members wait 30 days; the first ends on a `purchased` event."""
    for n in range(start, stop):
        goal = {"goal": {"rule": {"event": "purchased"}}} if n == 0 else {}
        world.apply(campaign(f"c{n:02d}", [wait("30d"), send("hello")], **goal))


def tick(world: World) -> None:
    """A tick a minute on, the store's clock moved to it (writes take their time from it)."""
    world.clock.set(world.now() + 60)
    world.runner.tick(world.now())


def tick_statements(world: World) -> list[str]:
    """The tick's statements but the sending thread's (and its helpers', named after it): on
    PostgreSQL it claims messages while the batches run, again each 50 ms of real time once
    caught up (`Dispatcher.sending_meanwhile`), so how many it sends follows the wall clock,
    not the tick's work; the dispatch after the batches is counted."""
    world.clock.set(world.now() + 60)
    with counted(world.store.engine) as seen:
        world.runner.tick(world.now())
    sent = zip(seen.texts, seen.threads, strict=True)
    return [text for text, thread in sent if not upkeep(text) and not thread.startswith("sending")]


def upkeep(text: str) -> bool:
    """The statistics upkeep (PostgreSQL: at most once a second of real time, before a
    probe by key: `StoreCore.keep_statistics`): whether a tick sends it depends on the
    wall clock, not on the tick's work, so it is left out of the counts compared here."""
    return "pg_stat_user_tables" in text or text.lstrip().upper().startswith("ANALYZE")


def differing(fewer: list[str], more: list[str]) -> str:
    """The statements of two ticks, where they differ (a count's failure says which)."""
    lines = difflib.unified_diff([t[:200] for t in fewer], [t[:200] for t in more], lineterm="")
    return "\n".join(lines)


def moves(statements: list[str]) -> int:
    return sum(text.lstrip().upper().startswith("UPDATE CAMPAIGNS") for text in statements)


def test_an_idle_tick_sends_as_many_statements_with_50_campaigns_as_with_5(world):
    for user in ("u1", "u2"):
        world.identify(user, plan="free")
    seen = {}
    for made, size in ((0, 5), (5, 50)):
        add_campaigns(world, made, size)
        # the first full pass and its batches, their cost measured (the governor); then idle
        for _ in range(3):
            tick(world)
        assert world.member(f"c{size - 1:02d}", "u1") is not None
        statements = tick_statements(world)
        assert moves(statements) == 0  # nothing changed: no watermark moved
        seen[size] = statements
    assert len(seen[50]) == len(seen[5]), differing(seen[5], seen[50])


def test_a_new_event_looks_at_the_campaigns_that_read_its_name_only(world):
    for user in ("u1", "u2"):
        world.identify(user, plan="free")
    seen = {}
    for made, size, buyer in ((0, 2, "u1"), (2, 20, "u2")):
        add_campaigns(world, made, size)
        for _ in range(3):  # as above: then idle
            tick(world)
        world.track(buyer, "purchased")  # read by c00's goal only
        statements = tick_statements(world)
        assert moves(statements) == 1  # every watermark behind the event, in one statement
        assert world.member("c00", buyer).state == "converted"
        assert world.member("c01", buyer).state == "active"
        seen[size] = statements
    assert len(seen[20]) == len(seen[2]), differing(seen[2], seen[20])  # c00 only


def test_a_cached_audience_is_compiled_again_for_a_new_version_or_attribute_type(world):
    world.apply(campaign("seats", [send("hi")], audience={"attr": "seats", "gte": 5}))
    programs = Programs(world.store)
    programs.refresh()
    first = programs.audience(world.ws, "seats")
    programs.refresh()
    assert programs.audience(world.ws, "seats") is first  # nothing changed: kept
    world.store.declare_attribute(world.ws, "seats", AttrType.NUMBER)
    programs.refresh()
    typed = programs.audience(world.ws, "seats")
    assert typed is not first
    world.apply(campaign("seats", [send("hi")], audience={"attr": "seats", "gte": 9}))
    programs.refresh()
    assert programs.audience(world.ws, "seats") is not typed
    # and the kept SQL selects at the time it is run, not the time it was compiled
    world.identify("few", plan="free", seats=6)
    world.identify("many", plan="free", seats=12)
    world.advance(HOUR)
    assert world.member("seats", "many") is not None and world.member("seats", "few") is None
