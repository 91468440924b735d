"""Requests' calls written together (DRUMBEAT_API_WRITE_GROUP, `api/write_group.py`): one
that fails is rolled back alone and answered with its error, the others are committed and
answered; a commit that fails answers every request of the group with its error, and
nothing of the group is stored."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from drumbeat.api.write_group import PendingWrite, WriteGroup, write_together
from drumbeat.model.records import EventRecord, UserRecord
from tests.api.conftest import Tenant


def _write(tenant: Tenant, tag: str, then=None) -> PendingWrite:  # type: ignore[no-untyped-def]
    events = [
        EventRecord(f"{tag}-user", "paid", 10.0, {"tag": tag}, f"{tag}-m{i}") for i in range(3)
    ]
    users = [UserRecord(f"{tag}-user", {}, {})]
    return PendingWrite(tenant.ws, users, events, 20.0, None, then)


def test_a_failed_write_is_rolled_back_alone(tenant: Tenant):
    def fails(_conn: Connection) -> None:
        raise RuntimeError("the event path failed")

    first, failing, last = _write(tenant, "a"), _write(tenant, "b", fails), _write(tenant, "c")
    write_together(tenant.store, [first, failing, last])
    assert first.done.result() == 3 and last.done.result() == 3
    with pytest.raises(RuntimeError, match="event path failed"):
        failing.done.result()
    assert tenant.store.count_events(tenant.ws) == 6
    assert sorted(tenant.store.load_users(tenant.ws, ["a-user", "b-user", "c-user"])) == [
        "a-user",
        "c-user",
    ]


def test_a_failed_commit_answers_every_write_with_its_error(tenant: Tenant):
    if tenant.store.dialect != "sqlite":
        pytest.skip("a foreign key checked at the commit (deferred) is SQLite's here")

    def breaks_the_commit(conn: Connection) -> None:  # checked when the group commits
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        conn.exec_driver_sql("UPDATE events SET workspace_id = -1 WHERE message_id = 'b-m0'")

    group = [_write(tenant, "a"), _write(tenant, "b", breaks_the_commit), _write(tenant, "c")]
    write_together(tenant.store, group)
    for write in group:
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            write.done.result()
    assert tenant.store.count_events(tenant.ws) == 0


def test_concurrent_requests_are_each_answered_once_committed(tenant: Tenant):
    group = WriteGroup(tenant.store, most=4)
    answers: dict[str, int] = {}

    def request(tag: str) -> None:
        write = _write(tenant, tag)
        answers[tag] = group.write_calls(write.ws, write.users, write.events, write.now)

    threads = [threading.Thread(target=request, args=(f"t{n}",)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    group.close()
    assert answers == {f"t{n}": 3 for n in range(12)}
    assert tenant.store.count_events(tenant.ws) == 36
