"""One campaign end to end on the virtual clock: enter, wait, branch, split, complete."""

from __future__ import annotations

from tests.world import DAY

ONBOARDING = {
    "key": "onboarding",
    "name": "Onboarding",
    "audience": {"attr": "plan", "eq": "free"},
    "steps": [
        {
            "send": {
                "id": "welcome",
                "channel": "email",
                "subject": "Hi {{ user.email }}",
                "body": "Welcome, {{ user.plan }} user",
            }
        },
        {"wait": "2d"},
        {"send": {"id": "tips", "channel": "in_app", "subject": "Tips", "body": "tips"}},
    ],
}


def test_members_enter_wait_and_complete(world):
    world.identify("u1", email="u1@example.com", plan="free")
    world.identify("u2", email="u2@example.com", plan="paid")
    world.apply(ONBOARDING)
    world.tick()
    assert world.steps_sent("u1") == ["welcome"]
    assert world.steps_sent("u2") == []
    assert world.delivered()[0]["subject"] == "Hi u1@example.com"
    world.advance(2 * DAY)
    assert world.steps_sent("u1") == ["welcome", "tips"]
    assert world.member("onboarding", "u1").state == "completed"
