"""A dispatcher sends claim after claim with the store's work done while the calls wait: the
next claim is taken (and leased) while a claim's calls are out, and every claim's results
are recorded by the time `dispatch` returns."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from drumbeat.channels.base import Message, Result
from drumbeat.channels.dispatcher import Dispatcher
from drumbeat.config import Settings
from drumbeat.store import Store
from tests.integration.test_delivery_faults import T0, db, queue, statuses, store

__all__ = ["db", "store"]  # fixtures

CLAIM = 10


class Holding:
    """A channel whose first batch is out until the store shows the next claim taken
    (more rows `sending` than the batch), or a deadline passed; then every call is sent."""

    name: ClassVar[str] = "webhook"

    def __init__(self, store: Store, workspace: str) -> None:
        self.store, self.workspace = store, workspace
        self.batches: list[int] = []
        self.next_claim_seen = False

    def send_batch(self, messages: Sequence[Message]) -> list[Result]:
        if not self.batches:
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline and not self.next_claim_seen:
                sending = statuses(self.store, self.workspace)["sending"]
                self.next_claim_seen = sending > len(messages)
                time.sleep(0.02)
        self.batches.append(len(messages))
        return [Result.sent()] * len(messages)

    def close(self) -> None:
        pass


def test_the_next_claim_is_taken_while_a_claims_calls_are_out(db, store, workspace_name):
    queue(db, 25, "webhook", {"body": "hi", "url": "https://hooks.example.test/"})
    store.batch_size = CLAIM
    channel = Holding(store, workspace_name)
    dispatcher = Dispatcher(store, Settings(secret_key="s" * 32), {"webhook": channel})
    try:
        report = dispatcher.dispatch(T0)
    finally:
        dispatcher.close()
    assert channel.next_claim_seen
    assert channel.batches == [10, 10, 5]
    assert dict(report.counts) == {"sent": 25}
    assert statuses(store, workspace_name) == {"sent": 25}
