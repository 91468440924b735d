"""A tick's messages are sent as its batches commit them (`Dispatcher.sending_meanwhile`): on
PostgreSQL on a thread of its own while the block runs, the rest once it ends; on SQLite all
once it ends. Either way everything due is sent, once, by the end."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import pytest

from drumbeat.channels.base import Message, Result
from drumbeat.channels.dispatcher import Dispatcher
from drumbeat.config import Settings
from drumbeat.engine.member import OutMessage
from drumbeat.store import Store
from tests.integration.test_delivery_faults import T0, db, queue, statuses, store

__all__ = ["db", "store"]  # fixtures

PAYLOAD = {"body": "hi", "url": "https://hooks.example.test/"}


class Noting:
    """A channel that sends everything and notes each batch's size; `sent` is set by the
    first."""

    name: ClassVar[str] = "webhook"

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.sent = threading.Event()

    def send_batch(self, messages: Sequence[Message]) -> list[Result]:
        self.batches.append(len(messages))
        self.sent.set()
        return [Result.sent()] * len(messages)

    def close(self) -> None:
        pass


def queue_more(store: Store, workspace: str, ids: range) -> None:
    """Messages due at T0 for users already there (`queue` made them), as a batch commits."""
    messages = [
        OutMessage(f"{workspace}/c/later/u{i}/1", "later", f"u{i}", 1, "webhook", PAYLOAD, T0)
        for i in ids
    ]
    with store.writing() as conn:
        store.insert_messages(conn, store.workspace_id(workspace), "c", messages)


def test_what_a_block_queues_is_sent_during_it_on_postgresql_and_all_by_its_end(
    db, store, workspace_name
):
    queue(db, 25, "webhook", PAYLOAD)
    store.batch_size = 10
    channel = Noting()
    dispatcher = Dispatcher(store, Settings(secret_key="s" * 32), {"webhook": channel})
    try:
        with dispatcher.sending_meanwhile(T0) as report:
            if store.dialect == "postgresql":
                assert channel.sent.wait(30.0)  # sent while the block still runs
            else:
                assert channel.batches == []  # SQLite: one writer at a time, after the block
            queue_more(store, workspace_name, range(7))
    finally:
        dispatcher.close()
    assert dict(report.counts) == {"sent": 32}
    assert statuses(store, workspace_name) == {"sent": 32}
    assert sum(channel.batches) == 32


def test_a_failing_block_raises_once_what_was_being_sent_is_recorded(db, store, workspace_name):
    queue(db, 5, "webhook", PAYLOAD)
    channel = Noting()
    dispatcher = Dispatcher(store, Settings(secret_key="s" * 32), {"webhook": channel})
    try:
        with pytest.raises(LookupError), dispatcher.sending_meanwhile(T0):
            raise LookupError("the batches failed")
    finally:
        dispatcher.close()
    sent = sum(channel.batches)  # by the thread (PostgreSQL) before the error: none after it
    assert statuses(store, workspace_name) == +Counter(sent=sent, pending=5 - sent)
    if store.dialect == "sqlite":
        assert sent == 0
