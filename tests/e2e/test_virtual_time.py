"""Under a virtual clock, what the flow stores carries the virtual time, not the real date."""

from __future__ import annotations

from drumbeat.channels.in_app import inbox_messages
from tests.e2e.helpers import at, campaign, send, sent_at
from tests.world import HOUR

IN_2030 = at("2030-06-03T10:00")


def test_an_in_app_message_is_created_at_the_virtual_time(world):
    world.clock.set(IN_2030)
    world.identify("u1", plan="free")
    world.apply(campaign("hello", [send("hello", "in_app")]))
    world.tick()
    world.advance(3 * HOUR)  # a later tick sends through the same channel
    world.identify("u2", plan="free")
    world.tick()
    assert sent_at(world, "u1", "hello") == IN_2030
    assert sent_at(world, "u2", "hello") == IN_2030 + 3 * HOUR
    for user in ("u1", "u2"):
        [message] = inbox_messages(world.store, world.ws, user)
        assert message["created_at"] == sent_at(world, user, "hello")
