"""The webhook channel: a signed JSON POST to the URL a campaign step gives (`data.url`).

Body: `{message_id, workspace, campaign, step, user_id, subject, body, data}`. Headers:
`X-Drumbeat-Signature: sha256=<hex HMAC-SHA256(the workspace's key, raw body)>` (`keys.py`),
and the outbox key made header-safe (`header_key`) as `Idempotency-Key` and
`X-Drumbeat-Message-Id` (the receiver's idempotency key: a message may come twice).

A batch's calls go out concurrently, up to `webhook_concurrency` at once, each under one
deadline of `webhook_timeout` seconds from DNS to the last byte of the reply (httpx's own
timeouts are per read: a server sending a byte a second would never trip them).

SSRF rules, checked before anything is sent (`AllowList.check_static`, the part that needs
no DNS, also when a campaign is checked):
- https only, unless the host is allow-listed (`settings.webhook_allow`: host names, IP
  addresses or CIDRs; an IP literal inside a listed CIDR counts as listed);
- the host is resolved (a name that does not exist FAILS, a DNS failure is RETRY); if any
  address is private, loopback, link-local, multicast, reserved, unspecified or otherwise
  not global (IPv4 and IPv6, including IPv4 embedded in mapped, 6to4, Teredo and NAT64
  addresses), the message FAILS unless the host name or that address is allow-listed;
- the request goes to the checked address (the URL carries the IP; the Host header and TLS
  SNI carry the name, and the certificate is verified against the name), so a second DNS
  answer cannot swap in another address; redirects are never followed.
Each host name gets its own pooled client (for the batch), so a TLS connection made for one
name is never reused for another name that happens to share its address.

Outcomes: 2xx → SENT; 429, 5xx, timeouts and connection errors → RETRY (a 429's or 5xx's
`Retry-After`, seconds or an HTTP date, is the least the retry waits: `Result.retry_after`);
3xx → FAILED ("redirects are not followed"); other 4xx → FAILED with the status and the
start of the body; a missing or refused URL → FAILED.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, ClassVar

import httpx
import orjson

from drumbeat.channels.base import Message, Result, header_key
from drumbeat.channels.keys import SigningKeys

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store.base import Store

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Refused(Exception):
    """The URL may not be called; the message says why."""


class Unresolved(Exception):
    """DNS gave no answer this time (not a "no such name"): worth a retry."""


_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def sign(secret: str, body: bytes) -> str:
    """The X-Drumbeat-Signature value for a raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def not_public(address: IPAddress) -> str | None:
    """Why an address may not be reached without an allow-list entry, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return not_public(address.ipv4_mapped)
        embedded = [address.sixtofour, address.teredo[1] if address.teredo else None]
        if address in NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        for inner in embedded:
            if inner is not None and not_public(inner):
                return f"embeds {inner}, which is {not_public(inner)}"
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "not global"


@dataclass(frozen=True, slots=True)
class Target:
    url: httpx.URL
    host: str  # ASCII (IDNA) host name or IP literal, lower case
    addresses: tuple[IPAddress, ...]


class AllowList:
    def __init__(self, entries: Sequence[str]) -> None:
        self.names: set[str] = set()
        self.networks: list[Network] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                self.names.add(entry.strip().lower().rstrip("."))

    def has_address(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def has_host(self, host: str) -> bool:
        if host in self.names:
            return True
        literal = _ip_literal(host)
        return literal is not None and self.has_address(literal)

    def check_static(self, raw_url: object) -> tuple[httpx.URL, str, bool]:
        """The rules that need no DNS (form, https, a literal address): (url, host, listed)."""
        url = parse_url(raw_url)
        host = url.raw_host.decode("ascii").lower().rstrip(".")
        listed = self.has_host(host)
        if url.scheme != "https" and not listed:
            raise Refused(f"webhook url must use https (host {host} is not allow-listed)")
        literal = _ip_literal(host)
        if literal is not None and not listed:
            self._check_address(host, literal)
        return url, host, listed

    def check(self, raw_url: object) -> Target:
        """Parse and check a URL, resolve its host and check every address (no request)."""
        url, host, listed = self.check_static(raw_url)
        addresses = resolve(host, url.port or (443 if url.scheme == "https" else 80))
        if not listed:
            for address in addresses:
                self._check_address(host, address)
        return Target(url, host, addresses)

    def _check_address(self, host: str, address: IPAddress) -> None:
        reason = not_public(address)
        if reason and not self.has_address(address):
            what = host if host == str(address) else f"{host} resolves to {address}, which"
            allow = "allow-list it in DRUMBEAT_WEBHOOK_ALLOW to call it"
            raise Refused(f"webhook host {what} is {reason}; {allow}")


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def parse_url(raw_url: object) -> httpx.URL:
    if not raw_url:
        raise Refused("webhook step has no url (data.url)")
    if not isinstance(raw_url, str):
        raise Refused(f"webhook url must be a string, not {type(raw_url).__name__}")
    try:
        url = httpx.URL(raw_url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise Refused(f"webhook url {raw_url!r} is invalid: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise Refused(f"webhook url {raw_url!r} must be http(s)")
    if not url.raw_host:
        raise Refused(f"webhook url {raw_url!r} has no host")
    return url


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    literal = _ip_literal(host)
    if literal is not None:
        return (literal,)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise Refused(f"webhook host {host} is not a valid name: {exc}") from exc
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_NAME:
            raise Refused(f"webhook host {host} does not resolve: {exc}") from exc
        raise Unresolved(f"webhook host {host} could not be resolved now: {exc}") from exc
    found = dict.fromkeys(ipaddress.ip_address(str(info[4][0])) for info in infos)
    if not found:
        raise Refused(f"webhook host {host} does not resolve")
    return tuple(found)


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
    if 200 <= status < 300:
        return Result.sent()
    if 300 <= status < 400:
        where = response.headers.get("location", "")
        return Result.failed(f"HTTP {status}: redirects are not followed (to {where!r})")
    snippet = b""
    async for chunk in response.aiter_raw():
        snippet += chunk
        if len(snippet) >= 200:
            break
    text = snippet[:200].decode("utf-8", "replace").strip()
    error = f"HTTP {status} {response.reason_phrase}" + (f": {text}" if text else "")
    if status == 429 or status >= 500:
        return Result.retry(error, retry_after(response.headers.get("retry-after")))
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

    def send_batch(self, messages: Sequence[Message]) -> list[Result]:
        """Up to `concurrency` calls at once, each within `timeout` seconds in all."""
        for workspace in {message.workspace for message in messages}:
            self.keys(workspace)  # a key read from the store would block the event loop
        return asyncio.run(self._send_all(messages))

    async def _send_all(self, messages: Sequence[Message]) -> list[Result]:
        clients: dict[str, httpx.AsyncClient] = {}
        slots = asyncio.Semaphore(self.concurrency)

        async def send(message: Message) -> Result:
            async with slots:
                try:
                    async with asyncio.timeout(self.timeout):
                        return await self._send(message, clients)
                except TimeoutError:
                    return Result.retry(f"webhook timed out after {self.timeout}s in all")

        try:
            return list(await asyncio.gather(*(send(message) for message in messages)))
        finally:
            for client in clients.values():
                await client.aclose()

    def _client(self, clients: dict[str, httpx.AsyncClient], host: str) -> httpx.AsyncClient:
        """The batch's pooled client for `host` (one a host name, see the module's doc)."""
        client = clients.get(host)
        if client is None:
            client = clients[host] = httpx.AsyncClient(
                timeout=self.timeout,
                limits=httpx.Limits(max_connections=self.concurrency),
                follow_redirects=False,
                trust_env=False,  # no proxy from the environment: it would undo the pinning
                verify=self._ssl,
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),  # stateless
            )
        return client

    async def _send(self, message: Message, clients: dict[str, httpx.AsyncClient]) -> Result:
        try:  # the name is resolved in a thread: the other calls go on meanwhile
            target = await asyncio.to_thread(self.allow.check, message.data.get("url"))
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
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        client = self._client(clients, target.host)
        error = "no address to connect to"
        for address in target.addresses:  # the next address only if nothing was sent
            pinned = target.url.copy_with(host=str(address))
            request = client.build_request(
                "POST", pinned, content=body, headers=headers, extensions=extensions
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                error = f"cannot connect to {target.host} ({address}): {exc}"
                continue
            except httpx.TimeoutException as exc:
                return Result.retry(f"webhook timed out after {self.timeout}s: {exc!r}")
            except httpx.TransportError as exc:
                return Result.retry(f"webhook {type(exc).__name__}: {exc}")
            try:
                return await _outcome(response)
            except httpx.TransportError as exc:  # reading the error body failed
                return Result.retry(f"webhook HTTP {response.status_code}: {exc}")
            finally:
                await response.aclose()
        return Result.retry(error)

    def close(self) -> None:
        """Nothing held: each batch's clients are closed with it."""
