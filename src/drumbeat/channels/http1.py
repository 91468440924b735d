"""HTTP/1.1 calls over kept-alive connections, for the webhook channel: h11's protocol state
machine over asyncio's transports, a request's bytes written at once. Only what the channel
needs: a request with its body, and the reply's status, headers and body up to a limit; no
redirects, cookies, proxies or compression. A third of the CPU a call that httpx's pool took
(its locks, events and models: 0.5 against 1.5 ms a call), and the channel's calls are most
of a dispatch worker's work.

A connection goes back to its pool once a reply was read to its end; an idle one is taken
again only while it is younger than KEEP_IDLE seconds and nothing arrived on it (the server
closing it), else it is closed."""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from dataclasses import dataclass

import h11

KEEP_IDLE = 4.0  # seconds: servers commonly close an idle connection after 5


class Closed(Exception):
    """The connection ended before the reply was whole."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    reason: str
    headers: dict[str, str]  # names in lower case
    body: bytes  # its first `most` bytes


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.state = h11.Connection(h11.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self._more: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.state.receive_data(data)
        self._wake()

    def eof_received(self) -> bool:
        self.state.receive_data(b"")
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()

    def _wake(self) -> None:
        if self._more is not None and not self._more.done():
            self._more.set_result(None)

    def fresh(self, now: float) -> bool:
        """Worth taking again: open, young enough, and nothing (an EOF) waiting to be read."""
        if self.lost or self.transport is None or self.transport.is_closing():
            return False
        if now - self.idle_since >= KEEP_IDLE:
            return False
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        waiting = select.poll()
        waiting.register(sock.fileno(), select.POLLIN)
        return not waiting.poll(0)

    async def exchange(self, request: h11.Request, body: bytes, most: int) -> tuple[Reply, bool]:
        """Send the request, read the reply: (reply, whether the connection can serve
        another)."""
        assert self.transport is not None
        state = self.state
        out = state.send(request) + state.send(h11.Data(data=body)) + state.send(h11.EndOfMessage())
        self.transport.write(out)
        head: h11.Response | None = None
        got = bytearray()
        while True:
            event = state.next_event()
            if event is h11.NEED_DATA:
                if self.lost:
                    raise Closed("the server closed the connection before its reply was whole")
                self._more = asyncio.get_running_loop().create_future()
                await self._more
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                got += event.data
                if len(got) >= most:
                    break
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise Closed("the server closed the connection before its reply was whole")
        assert head is not None  # h11 gives a reply's body and end only after its head
        reply = Reply(
            head.status_code,
            head.reason.decode("latin-1"),
            {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers},
            bytes(got[:most]),
        )
        if state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()
            return reply, True
        return reply, False

    def close(self) -> None:
        """At once: nothing is left to write, and a TLS goodbye would wait on the server."""
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Kept-alive connections to one host name, by address and port (TLS connections
    verified against `server_name`: `Target.host`)."""

    def __init__(self, tls: ssl.SSLContext | None, server_name: str) -> None:
        self.tls = tls
        self.server_name = server_name
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def connect(self, address: str, port: int) -> _Connection:
        """An idle connection to the address that is still fresh, or a new one (OSError
        when it cannot be made)."""
        idle = self._idle.get((address, port), [])
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.fresh(now):
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        name = self.server_name if self.tls is not None else None
        _, connection = await loop.create_connection(
            _Connection, address, port, ssl=self.tls, server_hostname=name
        )
        return connection

    async def call(
        self,
        connection: _Connection,
        address: str,
        port: int,
        request: h11.Request,
        body: bytes,
        most: int,
    ) -> Reply:
        """The request on `connection` (from `connect`), which goes back to the pool if it
        can serve another; Closed, h11.ProtocolError or OSError when the call failed."""
        try:
            reply, again = await connection.exchange(request, body, most)
        except BaseException:
            connection.close()
            raise
        if again:
            connection.idle_since = time.monotonic()
            self._idle.setdefault((address, port), []).append(connection)
        else:
            connection.close()
        return reply

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
