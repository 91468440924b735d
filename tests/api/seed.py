"""Data a management test reads back: a campaign with a control group, members in each
state, messages and a dead batch, written straight to the store (the flow that would make
them is tested elsewhere), in a tenant's workspace."""

from __future__ import annotations

import time

from sqlalchemy import update

from drumbeat.client import Drumbeat
from drumbeat.config import settings
from drumbeat.engine.member import Member, OutMessage, State
from drumbeat.store.schema import batches, outbox
from tests.api.conftest import Tenant

DRIP = {
    "key": "drip",
    "name": "Drip",
    "audience": {"attr": "plan", "eq": "free"},
    "goal": {"rule": {"attr": "plan", "eq": "paid"}, "window": "30d"},
    "steps": [
        {"send": {"id": "hello", "channel": "email", "subject": "Hi", "body": "Hello"}},
        {
            "split": {
                "id": "offer",
                "paths": {
                    "a": {
                        "weight": 50,
                        "steps": [
                            {
                                "send": {
                                    "id": "offer-a",
                                    "channel": "email",
                                    "subject": "A",
                                    "body": "a",
                                }
                            }
                        ],
                    },
                    "control": {"weight": 50, "steps": []},
                },
            }
        },
    ],
}
USERS = [f"u{i}" for i in range(20)]


def members(now: float) -> list[Member]:
    """u0..u19: every third converted, every seventh (not converted) inactive, others active."""
    found = []
    for i, user_id in enumerate(USERS):
        state, reason = State.ACTIVE, None
        if i % 3 == 0:
            state, reason = State.CONVERTED, "goal"
        elif i % 7 == 0:
            state, reason = State.INACTIVE, "inactive"
        exited = now if reason else None
        found.append(
            Member(user_id, state, "steps[1]", 1, now, now, exited_at=exited, exit_reason=reason)
        )
    return found


def message(ws: int, user_id: str, step: str, now: float) -> OutMessage:
    payload = {"subject": "Hi", "body": "Hello", "html": False}
    return OutMessage(f"{ws}/drip/{step}/{user_id}/1", step, user_id, 1, "email", payload, now)


def seed(tenant: Tenant) -> int:
    """The campaign, its members and 20 `hello` messages (u0..u19) and 5 `offer-a` ones,
    and a dead batch of u1, u2 (whose id is returned); users u0..u19 with addresses."""
    store, ws, now = tenant.store, tenant.ws, time.time()
    db = Drumbeat.attached(store, ws, settings(), lambda: now)
    db.identify_many(
        {"user_id": u, "traits": {"email": f"{u}@example.com", "plan": "free"}} for u in USERS
    )
    db.campaigns.apply(DRIP, activate=False)
    with store.writing() as conn:
        store.write_members(conn, ws, "drip", members(now))
        store.insert_messages(conn, ws, "drip", [message(ws, u, "hello", now) for u in USERS])
        store.insert_messages(conn, ws, "drip", [message(ws, u, "offer-a", now) for u in USERS[:5]])
        store.create_batches(conn, ws, "drip", "fast", "advance", [["u1", "u2"]], now, now)
    with store.writing() as conn:  # nothing left for another test's claims to take
        conn.execute(update(batches).where(batches.c.workspace_id == ws).values(status="dead"))
        conn.execute(update(outbox).where(outbox.c.workspace_id == ws).values(status="sent"))
    (batch,) = db.batches()
    return batch.id


def dead_message(tenant: Tenant) -> int:
    """One of the seeded messages made dead (as if its channel kept failing): its id."""
    store, ws = tenant.store, tenant.ws
    message_id = int(store.outbox_rows(ws, limit=1)[0]["id"])
    with store.writing() as conn:
        conn.execute(update(outbox).where(outbox.c.id == message_id).values(status="dead"))
    return message_id
