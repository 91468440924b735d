"""The user cache on the batch path (`Store.load_users`), on SQLite and PostgreSQL, in
memory and in Redis: writers and readers racing, no read ever returns a user older than
their last write committed before the read began."""

from __future__ import annotations

import threading

import pytest

from drumbeat.model.records import UserRecord
from drumbeat.store import open_store
from tests.contract.test_cache import cache  # noqa: F401 (the fixture: both kinds)

USERS = [f"u{n}" for n in range(20)]
WRITES = 150


@pytest.fixture
def cached_store(database_url, workspace_name, cache):  # noqa: F811
    store = open_store(database_url, batch_size=50, cache=cache)
    yield store, store.workspace_id(workspace_name)
    store.close()


def test_no_read_returns_a_user_older_than_their_last_committed_write(cached_store):
    store, ws = cached_store
    store.write_users(ws, [UserRecord(u, {}, {"n": 0}) for u in USERS], 1.0)
    committed = dict.fromkeys(USERS, 0)  # the last write of each user whose call returned
    stale: list[tuple[str, int, int]] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def write(users: list[str]) -> None:
        try:
            for n in range(1, WRITES + 1):
                store.write_users(ws, [UserRecord(u, {}, {"n": n}) for u in users], float(n))
                for u in users:
                    committed[u] = n
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            while not done.is_set():
                floor = dict(committed)
                found = store.load_users(ws, USERS)
                stale.extend(
                    (u, found[u].attributes["n"], floor[u])
                    for u in USERS
                    if found[u].attributes["n"] < floor[u]
                )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    threads.append(threading.Thread(target=write, args=(USERS[::2],)))
    threads.append(threading.Thread(target=write, args=(USERS[1::2],)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures and not any(t.is_alive() for t in threads)
    assert stale == []
    final = store.load_users(ws, USERS)  # and the cache serves the last writes
    assert {u.attributes["n"] for u in final.values()} == {WRITES}


def test_a_file_import_makes_the_cache_forget_the_workspace(cached_store, tmp_path):
    from drumbeat.ingest.importer import import_file

    store, ws = cached_store
    store.write_users(ws, [UserRecord(u, {}, {"plan": "free"}) for u in USERS], 1.0)
    assert {u.attributes["plan"] for u in store.load_users(ws, USERS).values()} == {"free"}
    store.load_users(ws, USERS)  # now served by the cache (Redis: without a store read)
    path = tmp_path / "users.jsonl"
    path.write_text("".join(f'{{"user_id": "{u}", "traits": {{"plan": "pro"}}}}\n' for u in USERS))
    import_file(store, ws, path, "users", now=2.0)
    assert {u.attributes["plan"] for u in store.load_users(ws, USERS).values()} == {"pro"}
