"""The email channel against a real SMTP server (aiosmtpd in a thread): what arrives, and how."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import unquote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from drumbeat.channels.base import Message, Outcome
from drumbeat.channels.email import EmailChannel
from drumbeat.channels.tokens import verify_unsubscribe_token
from drumbeat.config import Settings

SECRET = "test-secret-of-the-tests"


class Recorder:
    """aiosmtpd handler: keeps what it receives and from which session; some addresses are
    refused (`busy@` 451 at RCPT, `nobody@` 550 at RCPT, `reject@` 554 at end of DATA)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[Any, bytes, list[str]]] = []  # (session, content, rcpt)
        self.servers: list[Any] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(rcpt.startswith("reject@") for rcpt in envelope.rcpt_tos):
            return "554 5.7.1 message refused as spam"
        with self.lock:
            self.received.append((session, envelope.content, list(envelope.rcpt_tos)))
            if server not in self.servers:
                self.servers.append(server)
        return "250 OK"

    def emails(self) -> list[EmailMessage]:
        with self.lock:
            contents = [content for _, content, _ in self.received]
        parser = BytesParser(policy=policy.default)
        return [parser.parsebytes(content) for content in contents]  # type: ignore[misc]

    def sessions(self) -> int:
        with self.lock:
            return len({id(session) for session, _, _ in self.received})


class _Controller(Controller):
    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]  # bound to port 0: a free one
        super()._trigger_server()


class SmtpPeer:
    """A real SMTP server on a free local port, for as long as the `with` lasts."""

    def __init__(self, **smtp_options: Any) -> None:
        self.handler = Recorder()
        self.controller = _Controller(self.handler, hostname="127.0.0.1", port=0, **smtp_options)

    def __enter__(self) -> SmtpPeer:
        self.controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "smtp_starttls": False,
            "smtp_timeout": 5.0,
            "email_from": "Drumbeat <hello@drumbeat.test>",
            "secret_key": SECRET,
            "public_url": "https://app.drumbeat.test/",
        }
        return Settings(**{**values, **overrides})

    def drop_connections(self) -> None:
        """Close every client connection from the server side (as an idle timeout would)."""

        async def close_all() -> None:
            for server in self.handler.servers:
                server.transport.close()

        asyncio.run_coroutine_threadsafe(close_all(), self.controller.loop).result(5)


def message(n: int = 1, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "message_id": f"ws/trial/welcome/u{n}/1",
        "workspace": "ws",
        "campaign": "trial",
        "step": "welcome",
        "user_id": f"u{n}",
        "email": f"user{n}@example.test",
        "subject": f"Hello {n}",
        "body": f"Body of message {n}.\n",
    }
    return Message(**{**values, **fields})


def text(part: Any) -> str:
    return str(part.get_content()).replace("\r\n", "\n")


@pytest.fixture
def smtp():
    with SmtpPeer() as peer:
        yield peer


@pytest.fixture
def channel(smtp):
    channel = EmailChannel(smtp.settings(), None)
    yield channel
    channel.close()


def test_headers_body_and_unsubscribe_link(smtp, channel):
    [result] = channel.send_batch([message(7)])
    [email] = smtp.handler.emails()
    expected_id = "<ws/trial/welcome/u7/1@drumbeat>"  # the outbox key
    assert result.outcome is Outcome.SENT
    assert result.provider_id == email["Message-ID"] == expected_id
    assert email["From"] == "Drumbeat <hello@drumbeat.test>"
    assert email["To"] == "user7@example.test"
    assert email["Subject"] == "Hello 7"
    assert email.get_content_type() == "text/plain"
    assert text(email) == "Body of message 7.\n"
    link = str(email["List-Unsubscribe"])
    prefix = "<https://app.drumbeat.test/unsubscribe/"
    assert link.startswith(prefix) and link.endswith(">")
    assert verify_unsubscribe_token(SECRET, link[len(prefix) : -1]) == ("ws", "u7")
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert smtp.handler.received[0][2] == ["user7@example.test"]


def test_a_resend_carries_the_same_message_id(smtp, channel):
    first, again, other = channel.send_batch([message(1), message(1), message(2)])
    assert first.provider_id == again.provider_id != other.provider_id
    ids = [email["Message-ID"] for email in smtp.handler.emails()]
    assert ids == [first.provider_id, first.provider_id, other.provider_id]


def test_the_message_id_is_the_outbox_key_made_header_safe(smtp, channel):
    odd = message(message_id="ws/trial/welcome/ann.lee@x.test/zoë 100%/1", user_id="ann")
    long = message(message_id="ws/trial/welcome/" + "é" * 400 + "/1", user_id="long")
    sent = channel.send_batch([odd, long])
    ids = [str(email["Message-ID"]).strip() for email in smtp.handler.emails()]  # may be folded
    assert ids == [r.provider_id for r in sent]
    assert ids[0] == "<ws/trial/welcome/ann%2Elee%40x%2Etest/zo%C3%AB%20100%25/1@drumbeat>"
    assert unquote(ids[0][1:-10]) == odd.message_id  # the key comes back from the header
    digest = hashlib.sha256(long.message_id.encode()).hexdigest()  # too long for one line
    assert ids[1] == f"<{digest}@drumbeat>"


def test_html_is_sent_with_a_plain_text_alternative(smtp, channel):
    html = '<p>Hi <b>Ann</b>,</p><p>See <a href="https://x.test/p">pricing</a>.</p>'
    channel.send_batch([message(body=html, html=True)])
    [email] = smtp.handler.emails()
    assert email.get_content_type() == "multipart/alternative"
    plain, rich = email.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert text(plain) == "Hi Ann,\n\nSee pricing (https://x.test/p).\n"
    assert rich.get_content_type() == "text/html"
    assert rich.get_content().strip() == html


def test_a_subject_cannot_inject_headers(smtp, channel):
    channel.send_batch([message(subject="Hi\r\nBcc: everyone@example.test")])
    [email] = smtp.handler.emails()
    assert email["Subject"] == "Hi Bcc: everyone@example.test"
    assert email["Bcc"] is None


def test_one_connection_for_many_messages_and_batches(smtp, channel):
    assert [r.outcome for r in channel.send_batch([message(1), message(2), message(3)])] == [
        Outcome.SENT
    ] * 3
    assert [r.outcome for r in channel.send_batch([message(4), message(5)])] == [Outcome.SENT] * 2
    assert len(smtp.handler.received) == 5
    assert smtp.handler.sessions() == 1
    assert channel.connections == 1


def test_a_connection_the_server_dropped_is_reopened(smtp, channel):
    channel.send_batch([message(1)])
    smtp.drop_connections()
    results = channel.send_batch([message(2), message(3)])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert len(smtp.handler.received) == 3
    assert smtp.handler.sessions() == 2


def test_4xx_is_retried_5xx_fails_with_the_reply(smtp, channel):
    results = channel.send_batch(
        [
            message(1, email="busy@example.test"),
            message(2, email="nobody@example.test"),
            message(3, email="reject@example.test"),
            message(4),
        ]
    )
    assert [r.outcome for r in results] == [
        Outcome.RETRY,
        Outcome.FAILED,
        Outcome.FAILED,
        Outcome.SENT,
    ]
    assert results[0].error == "SMTP 451: 4.3.0 mailbox busy, try later"
    assert results[1].error == "SMTP 550: 5.1.1 no such user here"
    assert results[2].error == "SMTP 554: 5.7.1 message refused as spam"
    assert smtp.handler.sessions() == 1  # the connection survives refusals


@pytest.mark.parametrize("address", [None, ""])
def test_no_address_fails_without_connecting(smtp, channel, address):
    [result] = channel.send_batch([message(email=address)])
    assert (result.outcome, result.error) == (Outcome.FAILED, "user has no email")
    assert channel.connections == 0


def test_an_address_that_cannot_be_a_header_fails(smtp, channel):
    [result] = channel.send_batch([message(email="a@example.test\r\nBcc: b@example.test")])
    assert result.outcome is Outcome.FAILED
    assert "cannot build the email" in (result.error or "")
    assert smtp.handler.received == []


def test_an_unreachable_server_makes_the_batch_retry():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_timeout=2,
        secret_key=SECRET,
    )
    channel = EmailChannel(settings, None)
    try:
        results = channel.send_batch([message(1), message(2, email=None), message(3)])
    finally:
        channel.close()
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.FAILED, Outcome.RETRY]
    assert f"127.0.0.1:{port}" in (results[0].error or "")
    assert results[2].error == results[0].error  # the rest of the batch did not try again


def test_starttls_then_login(tmp_path, monkeypatch):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    server_tls = ssl_server_context(ca, "127.0.0.1")
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    options = {
        "tls_context": server_tls,
        "require_starttls": True,
        "authenticator": authenticator,
        "auth_required": True,
    }
    with SmtpPeer(**options) as smtp:
        settings = smtp.settings(smtp_starttls=True, smtp_username="app", smtp_password="s3cret")
        channel = EmailChannel(settings, None)
        try:
            [result] = channel.send_batch([message(1)])
        finally:
            channel.close()
        wrong = smtp.settings(smtp_starttls=True, smtp_username="app", smtp_password="wrong")
        bad = EmailChannel(wrong, None)
        try:
            [refused] = bad.send_batch([message(2)])
        finally:
            bad.close()
    assert result.outcome is Outcome.SENT
    assert logins[0] == (b"app", b"s3cret")
    assert len(smtp.handler.received) == 1
    assert refused.outcome is Outcome.RETRY  # a login problem is not the message's fault
    assert "535" in (refused.error or "")


def ssl_server_context(ca: Any, host: str) -> Any:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    return context


def test_unsubscribe_tokens_refuse_tampering():
    from drumbeat.channels.tokens import InvalidToken, unsubscribe_token

    token = unsubscribe_token(SECRET, "ws", "u1")
    assert verify_unsubscribe_token(SECRET, token) == ("ws", "u1")
    payload, mac = token.split(".")
    other_payload = unsubscribe_token(SECRET, "ws", "u2").split(".")[0]
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    for bad in [f"{other_payload}.{mac}", f"{payload}.{flipped}", f"{payload}.{mac}=", "", "x.y.z"]:
        with pytest.raises(InvalidToken):
            verify_unsubscribe_token(SECRET, bad)
    with pytest.raises(InvalidToken):
        verify_unsubscribe_token("another-secret", token)
