"""The webhook channel: a signed JSON POST to the URL a campaign step gives (`data.url`).

Body: `{message_id, workspace, campaign, step, user_id, subject, body, data}`. Headers:
`X-Drumbeat-Signature: sha256=<hex HMAC-SHA256(the workspace's key, raw body)>` (`keys.py`),
and the outbox key made header-safe (`header_key`) as `Idempotency-Key` and
`X-Drumbeat-Message-Id` (the receiver's idempotency key: a message may come twice).

A batch's calls go out concurrently, up to `webhook_concurrency` at once, each under one
deadline of `webhook_timeout` seconds from DNS to the last byte of the reply (a timeout per
read would never trip on a server sending a byte a second).

The SSRF guard (`ssrf.py`) checks each URL before anything is sent: https only and no
private or otherwise non-public address, unless allow-listed; the request goes to the
checked address; redirects are never followed. A URL is checked, its host resolved, once a
batch for all the batch's messages to it.

Calls go over HTTP/1.1 (`http1.py`). Each host name gets its own connection pool, so a TLS
connection made for one name is never reused for another name that happens to share its
address. The pools, and the event loop they run on, are kept from one batch to the next (a
host's pool while the next batch still calls it): a call reuses an idle connection to its
checked address instead of connecting again, once the reply before was read to its end (up
to BODY_KEPT bytes).

Outcomes: 2xx → SENT; 429, 5xx, timeouts and connection errors → RETRY (a 429's or 5xx's
`Retry-After`, seconds or an HTTP date, is the least the retry waits: `Result.retry_after`);
3xx → FAILED ("redirects are not followed"); other 4xx → FAILED with the status and the
start of the body; a missing or refused URL → FAILED.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, ClassVar

import h11
import httpx
import orjson

from drumbeat.channels.base import Message, Result, header_key
from drumbeat.channels.http1 import Closed, Pool, Reply
from drumbeat.channels.keys import SigningKeys
from drumbeat.channels.ssrf import AllowList, Refused, Target, Unresolved

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store.base import Store

BODY_KEPT = 65536  # of a reply's body read: past it, the connection is closed


def sign(secret: str, body: bytes) -> str:
    """The X-Drumbeat-Signature value for a raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _payload(message: Message) -> bytes:
    return orjson.dumps(
        {
            "message_id": message.message_id,
            "workspace": message.workspace,
            "campaign": message.campaign,
            "step": message.step,
            "user_id": message.user_id,
            "subject": message.subject,
            "body": message.body,
            "data": dict(message.data),
        }
    )


def _outcome(reply: Reply) -> Result:
    status = reply.status
    if 200 <= status < 300:
        return Result.sent()
    if 300 <= status < 400:
        where = reply.headers.get("location", "")
        return Result.failed(f"HTTP {status}: redirects are not followed (to {where!r})")
    text = reply.body[:200].decode("utf-8", "replace").strip()
    error = f"HTTP {status} {reply.reason}" + (f": {text}" if text else "")
    if status == 429 or status >= 500:
        return Result.retry(error, retry_after(reply.headers.get("retry-after")))
    return Result.failed(error)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait: delta-seconds or an HTTP date (RFC 9110
    10.2.3), a date in the past being 0; None when absent or neither."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": a date in UTC all the same
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookChannel:
    name: ClassVar[str] = "webhook"

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.keys = SigningKeys(settings, store)
        self.timeout = settings.webhook_timeout
        self.concurrency = settings.webhook_concurrency
        self.allow = AllowList(settings.webhook_allow)
        self._ssl = httpx.create_ssl_context(trust_env=True)  # honours SSL_CERT_FILE
        self._loop: asyncio.Runner | None = None  # made on the first batch, kept until close
        self._pools: dict[str, Pool] = {}  # a host name's kept-alive connections

    def send_batch(self, messages: Sequence[Message]) -> list[Result]:
        """Up to `concurrency` calls at once, each within `timeout` seconds in all."""
        for workspace in {message.workspace for message in messages}:
            self.keys(workspace)  # a key read from the store would block the event loop
        if self._loop is None:
            self._loop = asyncio.Runner()
        return self._loop.run(self._send_all(messages))

    async def _send_all(self, messages: Sequence[Message]) -> list[Result]:
        slots = asyncio.Semaphore(self.concurrency)
        checks: dict[str, asyncio.Future[Target]] = {}  # a URL's check, once a batch

        async def send(message: Message) -> Result:
            async with slots:
                try:
                    async with asyncio.timeout(self.timeout):
                        return await self._send(message, checks)
                except TimeoutError:
                    return Result.retry(f"webhook timed out after {self.timeout}s in all")

        results = list(await asyncio.gather(*(send(message) for message in messages)))
        called = {check.result().host for check in checks.values() if _checked(check)}
        for host in set(self._pools) - called:  # a host the next batch may not call again
            self._pools.pop(host).close()
        return results

    def _check(
        self, raw_url: object, checks: dict[str, asyncio.Future[Target]]
    ) -> Awaitable[Target]:
        """The URL checked and its host resolved, in a thread (the other calls go on
        meanwhile), once a batch for all its messages; shielded: a call that times out
        while waiting for it does not cancel it for the others."""
        if not isinstance(raw_url, str):
            return asyncio.to_thread(self.allow.check, raw_url)  # refused, naming the type
        if raw_url not in checks:
            checks[raw_url] = asyncio.ensure_future(asyncio.to_thread(self.allow.check, raw_url))
        return asyncio.shield(checks[raw_url])

    def _pool(self, target: Target) -> Pool:
        """The kept-alive connections to the target's host (one pool a host name, see the
        module's doc)."""
        pool = self._pools.get(target.host)
        if pool is None:
            tls = self._ssl if target.url.scheme == "https" else None
            pool = self._pools[target.host] = Pool(tls, target.host)
        return pool

    async def _send(self, message: Message, checks: dict[str, asyncio.Future[Target]]) -> Result:
        try:
            target = await self._check(message.data.get("url"), checks)
        except Refused as exc:
            return Result.failed(str(exc))
        except Unresolved as exc:
            return Result.retry(str(exc))
        try:
            body = _payload(message)
        except TypeError as exc:
            return Result.failed(f"webhook data is not JSON-serializable: {exc}")
        key = header_key(message.message_id)
        request = h11.Request(
            method="POST",
            target=target.url.raw_path,
            headers=[
                ("Host", target.url.netloc.decode("ascii")),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Accept-Encoding", "identity"),
                ("User-Agent", "drumbeat-webhook"),
                ("X-Drumbeat-Signature", sign(self.keys(message.workspace), body)),
                ("X-Drumbeat-Message-Id", key),
                ("Idempotency-Key", key),
            ],
        )
        pool = self._pool(target)
        port = target.url.port or (443 if target.url.scheme == "https" else 80)
        error = "no address to connect to"
        for address in target.addresses:  # the next address only if nothing was sent
            try:
                connection = await pool.connect(str(address), port)
            except OSError as exc:  # refused, unreachable, or TLS that does not verify
                error = f"cannot connect to {target.host} ({address}): {exc}"
                continue
            try:
                reply = await pool.call(connection, str(address), port, request, body, BODY_KEPT)
            except (Closed, h11.ProtocolError, OSError) as exc:
                return Result.retry(f"webhook {type(exc).__name__}: {exc}")
            return _outcome(reply)
        return Result.retry(error)

    def close(self) -> None:
        """The pools' connections closed, and the event loop."""
        if self._loop is not None:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
            self._loop.run(asyncio.sleep(0))  # the closed connections let go of their sockets
            self._loop.close()
            self._loop = None


def _checked(check: asyncio.Future[Target]) -> bool:
    return check.done() and not check.cancelled() and check.exception() is None
