"""The Python API behind the management endpoints: a user with their campaigns and
messages, erasure, suppression, a campaign's stats, pages of the outbox and batches."""

from __future__ import annotations

import pytest

from drumbeat.client import Drumbeat
from drumbeat.errors import InvalidInput
from drumbeat.views import PathConversion
from tests.api.conftest import Tenant
from tests.api.seed import USERS, seed


def test_users_stats_and_pages(client: Drumbeat):
    batch_id = seed(Tenant(client.ws, "", client.store, client.config.workspace))
    user = client.user("u0", messages=5)
    assert user is not None
    assert [(m.campaign, m.state, m.exit_reason) for m in user.memberships] == [
        ("drip", "converted", "goal")
    ]
    assert [m.step for m in user.messages] == ["offer-a", "hello"]  # newest first
    assert client.user("nobody") is None

    stats = client.campaigns.stats("drip")
    assert stats.exits == {"goal": 7, "inactive": 2}
    assert sum(p.entered for p in stats.paths.values()) == len(USERS)
    assert all(isinstance(p, PathConversion) for p in stats.paths.values())

    first = client.outbox(limit=10)
    rest = client.outbox(after=first[-1].id, limit=None)
    assert len(first) + len(rest) == 25 and first[-1].id < rest[0].id
    assert [b.id for b in client.batches(ids=[batch_id, batch_id + 1000])] == [batch_id]
    assert client.batches(after=batch_id) == []

    assert client.erase_user("u0") is True
    assert client.user("u0") is None
    assert client.suppress(["U0@example.com"], "complaint") == 0  # kept when erased
    with pytest.raises(InvalidInput, match="reason 'spam': use one of erased, bounce, complaint"):
        client.suppress(["a@b.co"], "spam")
    client.campaigns.archive("drip")
