"""The webhook channel: a signed JSON POST to the URL a campaign step gives (`data.url`).

Body: `{message_id, workspace, campaign, step, user_id, subject, body, data}`. Headers:
`X-Drumbeat-Signature: sha256=<hex HMAC-SHA256(the workspace's key, raw body)>` (`keys.py`),
and the outbox key made header-safe (`header_key`) as `Idempotency-Key` and
`X-Drumbeat-Message-Id` (the receiver's idempotency key: a message may come twice).

A batch's calls go out concurrently, up to `webhook_concurrency` at once, each under one
deadline of `webhook_timeout` seconds from DNS to the last byte of the reply (httpx's own
timeouts are per read: a server sending a byte a second would never trip them).

The SSRF guard (`ssrf.py`) checks each URL before anything is sent: https only and no
private or otherwise non-public address, unless allow-listed; the request goes to the
checked address; redirects are never followed. A URL is checked, its host resolved, once a
batch for all the batch's messages to it.

Each host name gets its own connection pool, so a TLS connection made for one name is never
reused for another name that happens to share its address. The pools, and the event loop
they run on, are kept from one batch to the next (a host's pool while the next batch still
calls it): a call reuses an idle connection to its checked address instead of connecting
again, and a reply is read to its end (up to BODY_KEPT bytes) so that its connection can be.

Outcomes: 2xx → SENT; 429, 5xx, timeouts and connection errors → RETRY (a 429's or 5xx's
`Retry-After`, seconds or an HTTP date, is the least the retry waits: `Result.retry_after`);
3xx → FAILED ("redirects are not followed"); other 4xx → FAILED with the status and the
start of the body; a missing or refused URL → FAILED.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson

from drumbeat.channels.base import Message, Result, header_key
from drumbeat.channels.keys import SigningKeys, sign
from drumbeat.channels.ssrf import AllowList, Refused, Target, Unresolved

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store.base import Store

BODY_KEPT = 65536  # of a reply's body read: past it, the connection is closed


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


async def _outcome(response: httpx.Response) -> Result:
    status = response.status_code
    body = await _head(response)
    if 200 <= status < 300:
        return Result.sent()
    if 300 <= status < 400:
        where = response.headers.get("location", "")
        return Result.failed(f"HTTP {status}: redirects are not followed (to {where!r})")
    text = body[:200].decode("utf-8", "replace").strip()
    error = f"HTTP {status} {response.reason_phrase}" + (f": {text}" if text else "")
    if status == 429 or status >= 500:
        return Result.retry(error, retry_after(response.headers.get("retry-after")))
    return Result.failed(error)


async def _head(response: httpx.Response) -> bytes:
    """The reply's body up to BODY_KEPT bytes. One read to its end leaves the connection
    ready for the next call (httpcore closes a connection whose reply was left unread)."""
    body = b""
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) >= BODY_KEPT:
            break
    return body


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
        self._timeouts = httpx.Timeout(self.timeout).as_dict()
        self._loop: asyncio.Runner | None = None  # made on the first batch, kept until close
        self._pools: dict[str, httpx.AsyncHTTPTransport] = {}  # a host name's connections

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
            await self._pools.pop(host).aclose()
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

    def _pool(self, host: str) -> httpx.AsyncHTTPTransport:
        """The pooled connections to `host` (one pool a host name, see the module's doc): no
        proxy (it would undo the pinning), no cookies, no redirects (none is followed)."""
        pool = self._pools.get(host)
        if pool is None:
            limits = httpx.Limits(max_connections=self.concurrency)
            pool = self._pools[host] = httpx.AsyncHTTPTransport(verify=self._ssl, limits=limits)
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
        headers = {
            "Host": target.url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": "drumbeat-webhook",
            "X-Drumbeat-Signature": sign(self.keys(message.workspace), body),
            "X-Drumbeat-Message-Id": key,
            "Idempotency-Key": key,
        }
        extensions: dict[str, Any] = {"timeout": self._timeouts}
        if target.url.scheme == "https":
            extensions["sni_hostname"] = target.host
        pool = self._pool(target.host)
        error = "no address to connect to"
        for address, pinned in target.pinned:  # the next address only if nothing was sent
            request = httpx.Request(
                "POST", pinned, content=body, headers=headers, extensions=extensions
            )
            try:
                response = await pool.handle_async_request(request)
            except httpx.ConnectError as exc:
                error = f"cannot connect to {target.host} ({address}): {exc}"
                continue
            except httpx.TimeoutException as exc:
                return Result.retry(f"webhook timed out after {self.timeout}s: {exc!r}")
            except httpx.TransportError as exc:
                return Result.retry(f"webhook {type(exc).__name__}: {exc}")
            try:
                return await _outcome(response)
            except httpx.TransportError as exc:  # reading the body failed
                return Result.retry(f"webhook HTTP {response.status_code}: {exc}")
            finally:
                await response.aclose()
        return Result.retry(error)

    def close(self) -> None:
        """The pools' connections closed, and the event loop."""
        if self._loop is not None:
            pools, self._pools = list(self._pools.values()), {}
            self._loop.run(_close_all(pools))
            self._loop.close()
            self._loop = None


def _checked(check: asyncio.Future[Target]) -> bool:
    return check.done() and not check.cancelled() and check.exception() is None


async def _close_all(pools: list[httpx.AsyncHTTPTransport]) -> None:
    for pool in pools:
        await pool.aclose()
