"""The webhook channel against a real HTTP server in a thread: signature, outcomes, SSRF rules."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, quote

import orjson
import pytest

from drumbeat.channels.base import Message, Outcome
from drumbeat.channels.sending import backoff
from drumbeat.channels.ssrf import not_public
from drumbeat.channels.webhook import WebhookChannel, retry_after
from drumbeat.config import Settings

SECRET = "hook-secret-of-the-tests"


class HookServer:
    """A real HTTP(S) server on a free local port. The path picks the answer: /status/404
    (`?retry-after=V` adds that header), /redirect, /slow (holds the response until
    `release` is set); anything else is 200. `keep_alive`: HTTP/1.1, a connection serving
    call after call."""

    def __init__(self, tls: ssl.SSLContext | None = None, *, keep_alive: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with peer.lock:
                    peer.requests.append(
                        {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                    )
                if self.path == "/slow":
                    peer.release.wait(60)
                    self.close_connection = True
                    return
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{peer.port}/elsewhere")
                elif self.path.startswith("/status/"):
                    path, _, query = self.path.partition("?")
                    self.send_response(int(path.rsplit("/", 1)[1]))
                    for value in parse_qs(query).get("retry-after", []):
                        self.send_header("Retry-After", value)
                else:
                    self.send_response(200)
                payload = b"nope" if self.path.startswith("/status/4") else b"ok"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = False  # server_close joins the handler threads

            def process_request(self, request: Any, client_address: Any) -> None:
                with peer.lock:
                    peer.connections += 1
                super().process_request(request, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (a timeout test) is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))

    def __enter__(self) -> HookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"secret_key": SECRET, "webhook_timeout": 5.0, "webhook_allow": []}
    return Settings(**{**values, **overrides})


def message(url: object = None, n: int = 1, **data: Any) -> Message:
    if url is not None:
        data["url"] = url
    return Message(
        message_id=f"ws/trial/ping/u{n}/1",
        workspace="ws",
        campaign="trial",
        step="ping",
        user_id=f"u{n}",
        email=None,
        subject="Subject",
        body="Body",
        data=data,
    )


@pytest.fixture
def server():
    with HookServer() as peer:
        yield peer


@pytest.fixture
def channel():
    channel = WebhookChannel(settings(webhook_allow=["127.0.0.1"]), None)
    yield channel
    channel.close()


@pytest.fixture
def strict():
    """A channel with an empty allow-list."""
    channel = WebhookChannel(settings(), None)
    yield channel
    channel.close()


def test_body_and_signature_verify_on_the_receiving_side(server, channel):
    [result] = channel.send_batch([message(server.url(), plan="pro")])
    assert result.outcome is Outcome.SENT
    [request] = server.requests
    body, headers = request["body"], request["headers"]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Drumbeat-Signature"], expected)
    assert headers["X-Drumbeat-Message-Id"] == headers["Idempotency-Key"] == "ws/trial/ping/u1/1"
    assert headers["Content-Type"] == "application/json"
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert orjson.loads(body) == {
        "message_id": "ws/trial/ping/u1/1",
        "workspace": "ws",
        "campaign": "trial",
        "step": "ping",
        "user_id": "u1",
        "subject": "Subject",
        "body": "Body",
        "data": {"url": server.url(), "plan": "pro"},
    }


@pytest.mark.parametrize(
    ("path", "outcome", "error"),
    [
        ("/status/204", Outcome.SENT, None),
        ("/status/500", Outcome.RETRY, "HTTP 500"),
        ("/status/503", Outcome.RETRY, "HTTP 503"),
        ("/status/429", Outcome.RETRY, "HTTP 429"),
        ("/status/404", Outcome.FAILED, "HTTP 404 Not Found: nope"),
        ("/status/400", Outcome.FAILED, "HTTP 400"),
        ("/redirect", Outcome.FAILED, "redirects are not followed"),
    ],
)
def test_status_codes_decide_the_outcome(server, channel, path, outcome, error):
    [result] = channel.send_batch([message(server.url(path))])
    assert result.outcome is outcome
    assert error is None or error in (result.error or "")
    assert [r["path"] for r in server.requests] == [path]  # a redirect is not followed


@pytest.mark.parametrize(
    ("status", "header", "asked"),
    [
        (429, "120", 120.0),
        (503, "7", 7.0),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date gone by: at once
        (429, "soon", None),  # neither seconds nor a date: the backoff alone
        (500, None, None),
    ],
)
def test_a_retry_carries_the_wait_the_provider_asked_for(server, channel, status, header, asked):
    query = "" if header is None else f"?retry-after={quote(header)}"
    [result] = channel.send_batch([message(server.url(f"/status/{status}{query}"))])
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == asked


def test_retry_after_as_an_http_date_counts_from_now():
    now = 1_445_412_400.0  # 2015-10-21T07:26:40Z
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 80.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 -0000", now) == 80.0
    assert retry_after(" 30 ", now) == 30.0
    assert retry_after("-5", now) is None and retry_after("", now) is None


def test_backoff_honours_retry_after_never_sooner_and_within_the_longest_wait():
    plain = [backoff(f"k{n}", 1, 5.0, 3600.0) for n in range(50)]
    assert all(4.0 <= delay <= 6.0 for delay in plain) and len(set(plain)) > 1
    asked = [backoff(f"k{n}", 1, 5.0, 3600.0, asked=30.0) for n in range(50)]
    assert all(30.0 <= delay <= 36.0 for delay in asked) and len(set(asked)) > 1
    assert backoff("k", 1, 5.0, 3600.0, asked=1.0) == backoff("k", 1, 5.0, 3600.0)  # the longer
    assert backoff("k", 1, 5.0, 600.0, asked=86_400.0) == 600.0


def test_a_slow_receiver_times_out_and_is_retried(server):
    channel = WebhookChannel(settings(webhook_allow=["127.0.0.1"], webhook_timeout=0.2), None)
    try:
        [result] = channel.send_batch([message(server.url("/slow"))])
    finally:
        channel.close()
    assert result.outcome is Outcome.RETRY
    assert "timed out" in (result.error or "")


def test_a_closed_port_is_retried(channel):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    [result] = channel.send_batch([message(f"http://127.0.0.1:{port}/hook")])
    assert result.outcome is Outcome.RETRY


def test_one_result_per_message_in_order(server, channel):
    batch = [message(server.url(), 1), message(None, 2), message(server.url("/status/500"), 3)]
    results = channel.send_batch(batch)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.RETRY]
    assert "no url" in (results[1].error or "")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (None, "no url"),
        (42, "must be a string"),
        ("ftp://hooks.example.com/x", "must be http(s)"),
        ("https://", "has no host"),
        ("http://example.com/hook", "must use https"),
    ],
)
def test_bad_urls_fail_naming_the_problem_before_any_network(strict, monkeypatch, url, error):
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    [result] = strict.send_batch([message(url)])
    assert result.outcome is Outcome.FAILED
    assert error in (result.error or "")


def test_loopback_is_refused_without_the_allow_list_and_nothing_reaches_it(server, strict):
    plain, tls = strict.send_batch(
        [message(server.url()), message(f"https://127.0.0.1:{server.port}/hook")]
    )
    assert (plain.outcome, tls.outcome) == (Outcome.FAILED, Outcome.FAILED)
    assert "must use https" in (plain.error or "")
    assert "host 127.0.0.1 is loopback" in (tls.error or "")
    assert server.connections == 0


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost", "loopback"),
        ("10.0.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:10.1.2.3]", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not global"),
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "private"),
        ("[64:ff9b::7f00:1]", "embeds 127.0.0.1"),
        ("[2002:7f00:1::1]", "embeds 127.0.0.1"),
    ],
)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_non_public_addresses_are_refused(strict, scheme, host, reason):
    [result] = strict.send_batch([message(f"{scheme}://{host}/hook")])
    assert result.outcome is Outcome.FAILED
    expected = "must use https" if scheme == "http" else reason
    assert expected in (result.error or "")


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass_the_guard(address):
    assert not_public(ipaddress.ip_address(address)) is None


def test_a_cidr_allows_its_addresses_over_plain_http(server):
    channel = WebhookChannel(settings(webhook_allow=["127.0.0.0/8"]), None)
    try:
        [result] = channel.send_batch([message(server.url())])
    finally:
        channel.close()
    assert result.outcome is Outcome.SENT


def test_https_connects_to_the_checked_address_with_the_name_for_sni_and_host(
    tmp_path, monkeypatch
):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(tls)
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: names.append(name)
    channel = WebhookChannel(settings(webhook_allow=["localhost"]), None)
    try:
        with HookServer(tls) as peer:
            [result] = channel.send_batch([message(f"https://localhost:{peer.port}/hook")])
    finally:
        channel.close()
    assert result.outcome is Outcome.SENT, result.error
    assert names == ["localhost"]  # the certificate was checked against the name
    [request] = peer.requests
    assert request["headers"]["Host"] == f"localhost:{peer.port}"


def test_calls_reuse_their_connections_from_batch_to_batch():
    channel = WebhookChannel(settings(webhook_allow=["127.0.0.1"], webhook_concurrency=2), None)
    with HookServer(keep_alive=True) as peer:
        try:
            for batch in range(3):
                results = channel.send_batch([message(peer.url(), n) for n in range(10)])
                assert [r.outcome for r in results] == [Outcome.SENT] * 10, batch
        finally:
            channel.close()
    assert len(peer.requests) == 30
    assert peer.connections <= 2  # the concurrency's, made once


def test_a_batch_resolves_its_url_once_for_all_its_messages(server, monkeypatch):
    lookups: list[str] = []
    lookup = socket.getaddrinfo

    def counted(host: str, *args: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counted)
    channel = WebhookChannel(settings(webhook_allow=["localhost"]), None)
    try:
        url = f"http://localhost:{server.port}/hook"
        results = channel.send_batch([message(url, n) for n in range(10)])
    finally:
        channel.close()
    assert [r.outcome for r in results] == [Outcome.SENT] * 10
    assert lookups == ["localhost"]


def test_data_that_is_not_json_fails(server, channel):
    [result] = channel.send_batch([message(server.url(), tags={"a", "b"})])
    assert result.outcome is Outcome.FAILED
    assert "not JSON-serializable" in (result.error or "")
    assert server.requests == []


class ServedInThread:
    """A test server on a free localhost port, served by a thread while in a `with` block."""

    def __init__(self, server: socketserver.ThreadingTCPServer) -> None:
        self.server = server
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


class Trickle(ServedInThread):
    """A server that answers one byte every `pause` seconds: no read ever waits long, so only
    a deadline over the whole call ends it."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, pause: float) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.recv(65536)
                try:
                    for byte in Trickle.RESPONSE:
                        self.request.sendall(bytes([byte]))
                        time.sleep(pause)  # the slow provider itself
                except OSError:
                    pass  # the client gave up

        super().__init__(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler))


def timed_batch(batch: list[Message], **overrides: Any) -> tuple[list[Outcome], float]:
    channel = WebhookChannel(settings(webhook_allow=["127.0.0.1"], **overrides), None)
    started = time.monotonic()
    try:
        results = channel.send_batch(batch)
    finally:
        channel.close()
    return [r.outcome for r in results], time.monotonic() - started


def test_a_server_trickling_its_reply_is_cut_at_the_overall_deadline():
    with Trickle(pause=0.2) as trickle:  # 40 bytes: 8 s, though no read waits 1 s
        channel = WebhookChannel(settings(webhook_allow=["127.0.0.1"], webhook_timeout=1.0))
        started = time.monotonic()
        try:
            [result] = channel.send_batch([message(trickle.url())])
        finally:
            channel.close()
        elapsed = time.monotonic() - started
    assert result.outcome is Outcome.RETRY
    assert "timed out after 1.0s in all" in (result.error or "")
    assert elapsed < 2.0


def test_hanging_calls_hold_their_own_slots_and_the_others_go_on(server):
    hanging = [message(server.url("/slow"), n) for n in range(3)]
    fast = [message(server.url(), n) for n in range(3, 15)]
    outcomes, elapsed = timed_batch(hanging + fast, webhook_timeout=1.0, webhook_concurrency=4)
    assert outcomes == [Outcome.RETRY] * 3 + [Outcome.SENT] * 12
    assert elapsed < 2.0  # one deadline for all three hanging calls, not one after another


def test_no_more_calls_are_in_flight_than_the_limit(server):
    hanging = [message(server.url("/slow"), n) for n in range(5)]
    outcomes, elapsed = timed_batch(hanging, webhook_timeout=0.5, webhook_concurrency=2)
    assert outcomes == [Outcome.RETRY] * 5
    assert 1.5 <= elapsed < 2.5  # three rounds of two: 2, 2, then 1


def test_the_outbox_key_is_the_idempotency_key_made_header_safe(server, channel):
    odd = replace(message(server.url()), message_id="ws/trial/ping/ann.lee@x.test/zoë/1")
    [result] = channel.send_batch([odd])
    assert result.outcome is Outcome.SENT
    [request] = server.requests
    key = "ws/trial/ping/ann%2Elee%40x%2Etest/zo%C3%AB/1"
    assert request["headers"]["Idempotency-Key"] == key
    assert request["headers"]["X-Drumbeat-Message-Id"] == key
    assert orjson.loads(request["body"])["message_id"] == odd.message_id
