"""The unmodified Segment and RudderStack Python libraries, pointed at `drumbeat serve`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from drumbeat.store.schema import events
from tests.api.conftest import Tenant


def stored_events(tenant: Tenant) -> list[tuple[Any, ...]]:
    query = (
        select(events.c.user_id, events.c.name, events.c.properties, events.c.message_id)
        .where(events.c.workspace_id == tenant.ws)
        .order_by(events.c.id)
    )
    with tenant.store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def test_segment_client_identifies_and_tracks(server: str, tenant: Tenant):
    from segment.analytics import Client

    errors: list[Any] = []
    client = Client(
        write_key=tenant.key,
        host=server,
        sync_mode=True,
        on_error=lambda error, _items: errors.append(error),
    )
    client.identify(
        "ada", {"email": "ada@example.com", "plan": "pro"}, context={"timezone": "Europe/Paris"}
    )
    client.track("ada", "Signed Up", {"source": "ads"}, message_id="seg-1")
    client.track("grace", "Viewed", {"page": 3})
    client.flush()

    assert errors == []
    users = tenant.store.load_users(tenant.ws, ["ada", "grace"])
    assert users["ada"].email == "ada@example.com"
    assert users["ada"].timezone == "Europe/Paris"
    assert users["ada"].attributes == {"plan": "pro"}
    assert "grace" in users  # a track of an unknown user creates the user
    assert stored_events(tenant) == [
        ("ada", "Signed Up", {"source": "ads"}, "seg-1"),
        ("grace", "Viewed", {"page": 3}, stored_events(tenant)[1][3]),
    ]


def test_rudder_client_sends_a_gzipped_batch(server: str, tenant: Tenant):
    from rudderstack.analytics.client import Client

    errors: list[Any] = []
    client = Client(
        write_key=tenant.key, host=server, on_error=lambda error, _items: errors.append(error)
    )
    client.identify("lin", {"plan": "free", "seats": 3})
    for n in range(5):
        client.track("lin", "Clicked", {"n": n})
    client.flush()  # waits until the queue is sent
    client.shutdown()

    assert errors == []
    assert tenant.store.load_users(tenant.ws, ["lin"])["lin"].attributes == {
        "plan": "free",
        "seats": 3,
    }
    assert [(e[0], e[1], e[2]) for e in stored_events(tenant)] == [
        ("lin", "Clicked", {"n": n}) for n in range(5)
    ]
