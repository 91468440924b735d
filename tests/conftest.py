"""Shared fixtures: the store backends every contract test runs against, and service checks.

Services (PostgreSQL, Redis, RabbitMQ) are real. A test that needs one skips with the reason
when it is absent, except under CI=true, where an absent service fails the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_ADMIN_URL = os.environ.get("DRUMBEAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def need_service(name: str, reason: str) -> None:
    """Skip (locally) or fail (under CI) a test whose service is unreachable."""
    message = f"{name} is not reachable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    try:
        import psycopg

        admin = psycopg.connect(
            PG_ADMIN_URL.replace("postgresql://", "postgresql://", 1),
            autocommit=True,
            connect_timeout=3,
        )
    except Exception as exc:
        need_service("PostgreSQL", str(exc))
    name = f"drumbeat_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(autouse=True)
def no_command_log_handler_after() -> Iterator[None]:
    """A command run in the test's process (Typer's CliRunner) puts its log handler on the
    root logger, writing to that test's captured standard error: it is taken off after the
    test, so a later test's thread does not log into a closed file ("Logging error")."""
    yield
    from drumbeat.logs import remove_handler

    remove_handler()


@pytest.fixture(autouse=True)
def real_time_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """The virtual clock is the store's, not a workspace's: on the session's PostgreSQL
    database every test shares it. A test that sets it (a World, `advance`) puts it back to
    real time, so a later test on real time does not find itself months in the past (and
    advance hour by hour through them to now)."""
    yield
    if "pg_database" in request.fixturenames:
        back_to_real_time(request.getfixturevalue("pg_database"))


def back_to_real_time(database_url: str) -> None:
    from sqlalchemy import inspect

    from drumbeat.pipeline.clock import StoreClock
    from drumbeat.store import open_store

    store = open_store(database_url, migrate=False)
    try:
        if inspect(store.engine).has_table("settings"):  # else no test made the tables yet
            clock = StoreClock(store)
            if clock.virtual:
                clock.reset()
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Each store test runs on SQLite (a new file) and on PostgreSQL (a session database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'drumbeat.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def workspace_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A workspace of its own per test, so tests sharing a PostgreSQL database never meet.
    At the end its campaigns are archived and its unfinished batches and messages ended: a
    tick plans every active campaign of every workspace and claims any workspace's work, so
    what a test left would be worked, and sent, in the ticks of later tests on the database."""
    name = f"ws-{uuid.uuid4().hex[:12]}"
    yield name
    if "database_url" in request.fixturenames:
        archive_campaigns(request.getfixturevalue("database_url"), name)


def archive_campaigns(database_url: str, workspace: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from drumbeat.errors import InvalidInput
    from drumbeat.store import open_store

    store = open_store(database_url, migrate=False)
    try:
        ws: int | None = store.workspace_id(workspace, create=False)
    except (InvalidInput, SQLAlchemyError):  # the test made no workspace, or no tables
        ws = None
    if ws is not None:
        for row in store.campaigns(ws):
            if row.status != "archived":
                store.set_campaign_status(ws, row.key, "archived", 0.0)
        settle_leftovers(store, ws)
    store.close()


def settle_leftovers(store, ws: int) -> None:  # type: ignore[no-untyped-def]
    """End the workspace's unfinished batches and messages: claims (of batches and of
    messages) take any workspace's, so a later test would work or send them."""
    from sqlalchemy import update

    from drumbeat.store.schema import batches, outbox

    with store.writing() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.workspace_id == ws, batches.c.status.in_(("pending", "running")))
            .values(status="skipped")
        )
        conn.execute(
            update(outbox)
            .where(outbox.c.workspace_id == ws, outbox.c.status.in_(("pending", "sending")))
            .values(status="dead", last_error="the test that made it ended")
        )


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


class VirtualClock:
    """A clock tests move by hand: epoch seconds, starting 2026-01-05T00:00:00Z (a Monday)."""

    def __init__(self, start: float = 1_767_571_200.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def client(database_url: str, workspace_name: str, clock: VirtualClock) -> Iterator[object]:
    from drumbeat.client import Drumbeat

    db = Drumbeat(database_url, workspace=workspace_name, clock=clock)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def world_shape() -> str:
    """How a world's batches are worked: in its process ("embedded"), or ("celery") by
    `drumbeat worker` processes through RabbitMQ, for the modules whose tests say
    `SHAPES = SEMANTICS_SHAPES` (the campaign semantics suite; PostgreSQL only, see
    `pytest_collection_modifyitems`)."""
    return "embedded"


SEMANTICS_SHAPES = ("embedded", "celery")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    shapes = getattr(metafunc.module, "SHAPES", None)
    if shapes and "world_shape" in metafunc.fixturenames:
        metafunc.parametrize("world_shape", shapes)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The distributed shape's workers serve the session's PostgreSQL database; a SQLite
    store is a test's own file, so the celery shape runs on PostgreSQL only."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("world_shape") == "celery" and params.get("database_url") == "sqlite":
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def semantics_workers(pg_database: str, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A `drumbeat worker` per batch lane on the session's PostgreSQL database, on a vhost
    of their own (no other test's workers take their messages); the broker URL."""
    from tests.workers import worker_env, workers

    logs = tmp_path_factory.mktemp("semantics-workers")
    with own_vhost() as vhost:
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        env = worker_env(pg_database, url, logs / "messages.jsonl")
        with workers(env, logs, {"fast": 1, "slow": 1}):
            yield url


@pytest.fixture
def world(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest,
    database_url: str,
    workspace_name: str,
    world_shape: str,
    tmp_path,
) -> Iterator[object]:
    """The whole flow on a virtual clock, on SQLite and on PostgreSQL (see tests/world.py),
    its batches worked in this process or (`world_shape`) by Celery workers."""
    from tests.world import World

    broker = request.getfixturevalue("semantics_workers") if world_shape == "celery" else None
    w = World(database_url, workspace_name, tmp_path, broker_url=broker)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(params=["checked here", "checked by two processes"])
def check_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """A users import checked in the importing process, or (as a big file is) by two check
    processes whatever the file's size (`ingest/check_processes.py`)."""
    from drumbeat.ingest.user_import import UsersImport

    if request.param == "checked here":
        return 1
    monkeypatch.setattr(UsersImport, "parallel_from", 0)
    monkeypatch.setattr(UsersImport, "default_processes", 2)
    return 2


@contextmanager
def own_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of its own (its queues, `drumbeat.fast` and the rest, are no
    one else's), deleted at the end; its name."""
    import shutil
    import socket
    import subprocess

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as exc:
        need_service("RabbitMQ", f"127.0.0.1:5672: {exc}")
    if shutil.which("rabbitmqctl") is None:
        need_service("RabbitMQ", "rabbitmqctl is not on PATH (needed to make a vhost)")
    name = f"drumbeat_test_{uuid.uuid4().hex[:10]}"

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)

    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        ctl("delete_vhost", name)


@pytest.fixture(scope="session")
def rabbit_vhost() -> Iterator[str]:
    """This test session's vhost, for the tests that start workers on stores of their own."""
    with own_vhost() as name:
        yield name


@pytest.fixture
def broker_url(rabbit_vhost: str) -> str:
    """DRUMBEAT_BROKER_URL of this session's vhost (guest/guest on 127.0.0.1:5672), its
    queues purged: what an earlier test left there is not this test's."""
    url = f"amqp://guest:guest@127.0.0.1:5672/{rabbit_vhost}"
    purge_queues(url)
    return url


def purge_queues(url: str) -> None:
    """Empty every queue of the distributed shape on the broker at `url`."""
    from drumbeat.pipeline.executors.celery_app import celery_app, declare, queues

    app = celery_app(url)
    declare(app)
    with app.connection_for_write() as conn:
        for queue in queues():
            queue.bind(conn.default_channel).purge()
    app.close()
