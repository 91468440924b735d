"""The webhook channel's SSRF guard: which URLs may be called, and at which addresses.

Rules, checked before anything is sent (`AllowList.check_static`, the part that needs
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
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Refused(Exception):
    """The URL may not be called; the message says why."""


class Unresolved(Exception):
    """DNS gave no answer this time (not a "no such name"): worth a retry."""


_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


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
    pinned: tuple[tuple[IPAddress, httpx.URL], ...]  # each checked address, the URL to it


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
        return Target(url, host, tuple((a, url.copy_with(host=str(a))) for a in addresses))

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
