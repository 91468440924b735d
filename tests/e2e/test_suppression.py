"""Suppressed addresses are never mailed: an erased user's address, a hard bounce's, a
complaint's, kept hashed and checked by the dispatcher at send time, one query a batch."""

from __future__ import annotations

from drumbeat.store.base import Store
from tests.e2e.helpers import campaign, send, wait
from tests.e2e.test_delivery import plan_and_work
from tests.world import DAY, World

DRIP = campaign("drip", [send("one"), wait("1d"), send("two")])


def test_a_suppressed_address_is_not_mailed_whatever_its_spelling(world: World):
    world.identify("u1", plan="free", email="Ada@Example.com")
    world.identify("u2", plan="free", email="bob@example.com")
    world.apply(DRIP)
    plan_and_work(world)
    assert world.db.suppress([" ada@example.COM"], "bounce") == 1
    assert world.db.suppress(["ada@example.com"], "complaint") == 0  # once is enough
    world.runner.dispatcher.dispatch(world.now())
    rows = {r["user_id"]: r for r in world.outbox()}
    assert rows["u1"]["status"] == "failed"
    assert rows["u1"]["last_error"].startswith("suppressed: the address")
    assert rows["u2"]["status"] == "sent"
    assert [m["user_id"] for m in world.delivered()] == ["u2"]


def test_an_erased_users_address_stays_suppressed_for_a_new_user(world: World):
    world.identify("u1", plan="free", email="ada@example.com")
    world.apply(DRIP)
    world.tick()
    assert world.db.erase_user("u1") is True
    assert world.db.erase_user("u1") is False
    world.identify("u1-again", plan="free", email="ADA@example.com")
    world.identify("u2", plan="free", email="bob@example.com")
    world.advance(2 * DAY)
    sent = [(m["user_id"], m["step"]) for m in world.delivered()]
    assert sorted(sent) == [("u1", "one"), ("u2", "one"), ("u2", "two")]
    failed = {r["user_id"]: r["status"] for r in world.outbox() if r["user_id"] == "u1-again"}
    assert set(failed.values()) == {"failed"}


def test_the_dispatcher_reads_suppressions_once_a_batch(world: World, monkeypatch):  # type: ignore[no-untyped-def]
    for i in range(30):
        world.identify(f"u{i}", plan="free", email=f"u{i}@example.com")
    world.apply(DRIP)
    plan_and_work(world)
    calls: list[int] = []
    real = Store.suppressed

    def counted(self: Store, ws: int, addresses: object) -> set[str]:
        found = set(addresses)  # type: ignore[call-overload]
        calls.append(len(found))
        return real(self, ws, found)

    monkeypatch.setattr(Store, "suppressed", counted)
    world.runner.dispatcher.dispatch(world.now())
    assert calls == [30]
