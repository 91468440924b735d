"""The channel contract: one suite, run against every channel and its real peer.

email: a real SMTP server (aiosmtpd); webhook: a real HTTP server (127.0.0.1 allow-listed);
in_app: the real store on SQLite and PostgreSQL; file: a file. Then the registry: channels
come from the `drumbeat.channels` entry-point group, as a package would add one.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from drumbeat.channels import (
    Channel,
    ChannelError,
    Message,
    Outcome,
    UnknownChannel,
    close_channels,
    get_channel,
    load_channels,
)
from drumbeat.channels.email import EmailChannel
from drumbeat.channels.file import FileChannel
from drumbeat.channels.in_app import InAppChannel, inbox_messages
from drumbeat.channels.webhook import WebhookChannel
from drumbeat.config import Settings
from drumbeat.store import open_store
from tests.integration.test_email import SmtpPeer
from tests.integration.test_webhook import HookServer

CASES = [
    pytest.param("email", "sqlite", id="email"),
    pytest.param("webhook", "sqlite", id="webhook"),
    pytest.param("in_app", "sqlite", id="in_app-sqlite"),
    pytest.param("in_app", "postgresql", id="in_app-postgresql"),
    pytest.param("file", "sqlite", id="file"),
]
contract = pytest.mark.parametrize(("kind", "database_url"), CASES, indirect=["database_url"])


@dataclass
class Peer:
    """A channel wired to its real peer. Each good message's body is its message_id, and
    `seen()` lists the bodies the peer received, in order. `bad` makes a message the channel
    must fail by itself (None where the channel has no such case). `keys()` lists the outbox
    keys the peer was given, decoded (None where the channel's transport has no place for it)."""

    channel: Channel
    good: Callable[[int], Message]
    bad: Callable[[int], Message] | None
    seen: Callable[[], list[str]]
    keys: Callable[[], list[str]] | None = None


def make_message(workspace: str, n: int, **fields: Any) -> Message:
    message_id = f"{workspace}/trial/step/u{n}/1"
    values: dict[str, Any] = {
        "message_id": message_id,
        "workspace": workspace,
        "campaign": "trial",
        "step": "step",
        "user_id": f"u{n}",
        "email": f"u{n}@example.test",
        "subject": f"Subject {n}",
        "body": message_id,
    }
    return Message(**{**values, **fields})


def _email(stack: ExitStack, store: Any, ws: str) -> Peer:
    smtp = stack.enter_context(SmtpPeer())
    channel = EmailChannel(smtp.settings(), store)
    stack.callback(channel.close)
    return Peer(
        channel,
        lambda n: make_message(ws, n),
        lambda n: make_message(ws, n, email=None),
        lambda: [str(e.get_content()).strip() for e in smtp.handler.emails()],
        lambda: [
            unquote(str(e["Message-ID"]).strip().removeprefix("<").removesuffix("@drumbeat>"))
            for e in smtp.handler.emails()
        ],
    )


def _webhook(stack: ExitStack, store: Any, ws: str) -> Peer:
    server = stack.enter_context(HookServer())
    store.workspace_id(ws)  # no DRUMBEAT_SECRET_KEY: the bodies are signed with its stored key
    channel = WebhookChannel(Settings(webhook_allow=["127.0.0.1"]), store)
    stack.callback(channel.close)
    return Peer(
        channel,
        lambda n: make_message(ws, n, data={"url": server.url()}),
        lambda n: make_message(ws, n),  # no url
        lambda: [orjson.loads(r["body"])["body"] for r in server.requests],
        lambda: [unquote(r["headers"]["Idempotency-Key"]) for r in server.requests],
    )


def _in_app(stack: ExitStack, store: Any, ws: str) -> Peer:
    ws_id = store.workspace_id(ws)
    channel = InAppChannel(Settings(), store)
    stack.callback(channel.close)

    def seen() -> list[str]:
        users = [f"u{n}" for n in range(10)]
        rows = [row for user in users for row in inbox_messages(store, ws_id, user)]
        return [row["body"] for row in sorted(rows, key=lambda row: row["id"])]

    return Peer(
        channel,
        lambda n: make_message(ws, n),
        lambda n: make_message("no-such-workspace", n),
        seen,
    )


def _file(stack: ExitStack, store: Any, ws: str, path: Any) -> Peer:
    channel = FileChannel(Settings(outbox_file=str(path)), store)
    stack.callback(channel.close)

    def seen() -> list[str]:
        if not path.exists():
            return []
        return [orjson.loads(line)["body"] for line in path.read_bytes().splitlines()]

    def keys() -> list[str]:
        return [orjson.loads(line)["message_id"] for line in path.read_bytes().splitlines()]

    return Peer(channel, lambda n: make_message(ws, n), None, seen, keys)


@pytest.fixture
def peer(kind, database_url, tmp_path, workspace_name) -> Iterator[Peer]:
    with ExitStack() as stack:
        store = open_store(database_url)
        stack.callback(store.close)
        if kind == "email":
            yield _email(stack, store, workspace_name)
        elif kind == "webhook":
            yield _webhook(stack, store, workspace_name)
        elif kind == "in_app":
            yield _in_app(stack, store, workspace_name)
        else:
            yield _file(stack, store, workspace_name, tmp_path / "out" / "messages.jsonl")


@contract
def test_the_outbox_key_reaches_the_peer(peer, kind):
    if peer.keys is None:
        pytest.skip(f"{kind} has no place for the key (the inbox row is the message)")
    odd = replace(peer.good(1), message_id=peer.good(1).message_id + "/ann.lee@x.test 100%/é")
    assert [r.outcome for r in peer.channel.send_batch([odd, peer.good(2)])] == [Outcome.SENT] * 2
    # a batch's messages may reach the peer in any order (webhooks go out concurrently)
    assert sorted(peer.keys()) == sorted([odd.message_id, peer.good(2).message_id])


@contract
def test_the_class_name_is_its_registered_key(peer, kind):
    assert type(peer.channel).name == kind


@contract
def test_one_result_per_message_in_order(peer):
    batch = [peer.good(1), peer.good(2), peer.good(3)]
    if peer.bad is not None:
        batch.insert(1, peer.bad(9))
    results = peer.channel.send_batch(batch)
    expected = [Outcome.FAILED if m.body.endswith("u9/1") else Outcome.SENT for m in batch]
    assert [r.outcome for r in results] == expected
    assert all(r.error for r in results if r.outcome is Outcome.FAILED)
    # results come in the batch's order; the peer may see a batch's messages in any order
    assert sorted(peer.seen()) == sorted(peer.good(n).message_id for n in (1, 2, 3))


@contract
def test_batches_follow_one_another(peer):
    first = peer.channel.send_batch([peer.good(1), peer.good(2)])
    second = peer.channel.send_batch([peer.good(3)])
    assert [r.outcome for r in first + second] == [Outcome.SENT] * 3
    seen, ids = peer.seen(), [peer.good(n).message_id for n in (1, 2, 3)]
    assert sorted(seen[:2]) == sorted(ids[:2]) and seen[2:] == ids[2:]  # the first batch first


@contract
def test_an_empty_batch_does_nothing(peer):
    assert peer.channel.send_batch([]) == []
    assert peer.seen() == []


@contract
def test_close_twice(peer):
    peer.channel.send_batch([peer.good(1)])
    peer.channel.close()
    peer.channel.close()


@contract
def test_close_twice_without_sending(peer):
    peer.channel.close()
    peer.channel.close()


# ---- the registry ---------------------------------------------------------------------------

ECHO = """
from drumbeat.channels.base import Result


class EchoChannel:
    name = "echo"

    def __init__(self, settings, store):
        self.settings, self.store, self.closed = settings, store, 0

    def send_batch(self, messages):
        return [Result.sent(m.message_id) for m in messages]

    def close(self):
        self.closed += 1
"""


def install_plugin(root: Any, name: str, entry_points: str, module: str = "") -> None:
    """A package on sys.path with a dist-info: what `pip install` leaves behind."""
    root.mkdir(parents=True, exist_ok=True)
    if module:
        (root / f"{name}.py").write_text(module)
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def echo_plugin(tmp_path, monkeypatch) -> Iterator[None]:
    """A package registering `echo`, plus the built-in `email` and `file` the dry run needs
    (the same values Drumbeat's own metadata declares, so they do not clash)."""
    install_plugin(
        tmp_path / "site",
        "drumbeat_echo",
        """
        [drumbeat.channels]
        echo = drumbeat_echo:EchoChannel
        email = drumbeat.channels.email:EmailChannel
        file = drumbeat.channels.file:FileChannel
        """,
        ECHO,
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield
    sys.modules.pop("drumbeat_echo", None)


@pytest.fixture
def sqlite_store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'registry.db'}")
    yield store
    store.close()


def test_a_package_adds_a_channel_through_the_entry_point(echo_plugin, sqlite_store, tmp_path):
    settings = Settings(outbox_file=str(tmp_path / "out.jsonl"))
    channels = load_channels(settings, sqlite_store)
    try:
        echo = get_channel(channels, "echo")
        assert (echo.settings, echo.store) == (settings, sqlite_store)  # type: ignore[attr-defined]
        assert [r.provider_id for r in echo.send_batch([make_message("ws", 1)])] == [
            "ws/trial/step/u1/1"
        ]
    finally:
        close_channels(channels)
    assert echo.closed == 1  # type: ignore[attr-defined]


def test_without_an_smtp_host_email_is_the_file_channel(echo_plugin, sqlite_store, tmp_path):
    out = tmp_path / "dry-run.jsonl"
    channels = load_channels(Settings(smtp_host=None, outbox_file=str(out)), sqlite_store)
    try:
        assert channels["email"] is channels["file"]
        assert isinstance(channels["email"], FileChannel)
        [result] = get_channel(channels, "email").send_batch([make_message("ws", 1)])
    finally:
        close_channels(channels)
    assert result.outcome is Outcome.SENT
    [line] = out.read_bytes().splitlines()
    assert orjson.loads(line)["email"] == "u1@example.test"


def test_with_an_smtp_host_email_is_smtp(echo_plugin, sqlite_store):
    settings = Settings(smtp_host="smtp.example.test")  # nothing connects before a batch
    channels = load_channels(settings, sqlite_store)
    try:
        assert isinstance(channels["email"], EmailChannel)
        assert channels["email"] is not channels["file"]
    finally:
        close_channels(channels)


def test_an_unknown_channel_is_named_with_the_known_ones(echo_plugin, sqlite_store):
    channels = load_channels(Settings(), sqlite_store)
    try:
        with pytest.raises(UnknownChannel) as caught:
            get_channel(channels, "sms")
    finally:
        close_channels(channels)
    message = str(caught.value)
    assert message.startswith("unknown channel 'sms': the channels are ")
    assert "echo" in message and "email" in message and "drumbeat.channels" in message


def test_two_packages_claiming_one_name_is_an_error(echo_plugin, tmp_path, monkeypatch):
    install_plugin(
        tmp_path / "other",
        "other_echo",
        "[drumbeat.channels]\necho = other_echo:Echo\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path / "other"))
    with pytest.raises(ChannelError, match="'echo' is registered twice"):
        load_channels(Settings(), None)  # type: ignore[arg-type]


def test_a_plugin_that_cannot_load_is_named(tmp_path, monkeypatch, sqlite_store):
    install_plugin(tmp_path / "broken", "broken_sms", "[drumbeat.channels]\nsms = nowhere:Sms\n")
    monkeypatch.syspath_prepend(str(tmp_path / "broken"))
    with pytest.raises(ChannelError, match=r"channel 'sms' \(nowhere:Sms\) cannot be loaded"):
        load_channels(Settings(), sqlite_store)


def test_drumbeat_registers_its_own_channels():
    from drumbeat.channels import available

    assert {"email", "webhook", "in_app", "file"} <= set(available()), (
        "add the [project.entry-points.'drumbeat.channels'] lines to pyproject.toml"
        " and reinstall (pip install -e .)"
    )
