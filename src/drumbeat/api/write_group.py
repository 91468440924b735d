"""On SQLite, the tracking calls of concurrent requests are written together: one writer
thread per serving process takes every request's write queued meanwhile (up to
`DRUMBEAT_API_WRITE_GROUP`) and writes them in one transaction, each in a savepoint of its
own. SQLite has one writer at a time; each transaction costs a turn of the write lock, a
BEGIN and a commit that appends every page it changed to the WAL, and the calls of
concurrent requests change mostly the same index pages.

Each request's write is still all or nothing, and still durable when its response says
200: a request is answered only after the group's commit. A write that fails is rolled back
to its savepoint and only its request gets the error; if the commit fails, every request of
the group gets that error (none was answered yet). The writer does not wait for more work:
a request alone is written at once. PostgreSQL writes each request in its own transaction
(concurrent writers do not wait for one another there, and the server commits them
together)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from drumbeat.model.attributes import AttrType
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.store import Store
from drumbeat.store.base import Then

# `Store.write_calls`, or `WriteGroup.write_calls` (the same parameters)
WriteCalls = Callable[..., int]


@dataclass
class PendingWrite:
    """One request's calls, and the answer its request waits for."""

    ws: int
    users: Sequence[UserRecord]
    events: Sequence[EventRecord]
    now: float
    new_types: Mapping[str, AttrType] | None
    then: Then | None
    done: Future[int] = field(default_factory=Future)


class WriteGroup:
    """A writer thread for the calls of one serving process's requests."""

    def __init__(self, store: Store, most: int) -> None:
        self.store, self.most = store, most
        self._queue: queue.SimpleQueue[PendingWrite | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="api-write-group", daemon=True)
        self._thread.start()

    def write_calls(
        self,
        ws: int,
        users: Sequence[UserRecord],
        events: Sequence[EventRecord],
        now: float,
        *,
        new_types: Mapping[str, AttrType] | None = None,
        then: Then | None = None,
    ) -> int:
        """`Store.write_calls`, committed with whatever other requests' calls were waiting;
        returns once committed, or raises what this write (or the commit) raised."""
        write = PendingWrite(ws, users, events, now, new_types, then)
        self._queue.put(write)
        return write.done.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _work(self) -> None:
        while (first := self._queue.get()) is not None:
            group = [first]
            while len(group) < self.most:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(more)
            write_together(self.store, group)


def write_together(store: Store, group: Sequence[PendingWrite]) -> None:
    """The group's writes in one transaction, each in a savepoint; each gets its answer."""
    written: list[tuple[PendingWrite, int]] = []
    try:
        with store.writing() as conn:
            for write in group:
                try:
                    with conn.begin_nested():
                        inserted = store.write_calls_in(
                            conn, write.ws, write.users, write.events, write.now,
                            new_types=write.new_types, then=write.then,
                        )  # fmt: skip
                except Exception as exc:  # this request's error, given to it alone
                    write.done.set_exception(exc)
                else:
                    written.append((write, inserted))
    except Exception as exc:  # the transaction or its commit failed: none is stored
        for write in group:
            if not write.done.done():
                write.done.set_exception(exc)
        return
    for write, inserted in written:
        store.users_changed(write.ws, [user.user_id for user in write.users])
        write.done.set_result(inserted)
