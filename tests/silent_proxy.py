"""A TCP proxy a test puts between a client and a service, to fault the world between them:
its connections can go silent (a NAT or firewall forgetting them, the service's host gone)
with neither end told."""

from __future__ import annotations

import select
import socket
import threading

POLL = 0.05  # seconds a forwarding thread waits for data before it looks whether to stop


class Link:
    """One connection through the proxy: the client's, and the proxy's to the service."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self._silent = threading.Event()
        self._closing = threading.Event()
        self._stopped = threading.Event()

    def forward(self) -> None:
        """Pass what either end sends to the other, until one closes or the link goes
        silent."""
        peer = {self.client: self.upstream, self.upstream: self.client}
        try:
            while not self._silent.is_set() and not self._closing.is_set():
                readable, _, _ = select.select(list(peer), [], [], POLL)
                if self._silent.is_set():  # what came since is not passed on
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:  # one end closed: so does the other
                        self._close_sockets()
                        return
                    peer[sock].sendall(data)
        except OSError:
            self._close_sockets()
        finally:
            self._stopped.set()

    def go_silent(self) -> None:
        """Forward nothing more, either way, and close nothing: both ends wait in vain."""
        self._silent.set()
        assert self._stopped.wait(10), "the link kept forwarding"

    def close(self) -> None:
        """Close both ends, once the forwarding thread has let go of them (a socket closed
        under its `select` is a file descriptor of -1 there)."""
        self._closing.set()
        assert self._stopped.wait(10), "the link kept forwarding"
        self._close_sockets()

    def _close_sockets(self) -> None:
        self.client.close()
        self.upstream.close()


class SilentProxy:
    """Forwards each connection made to 127.0.0.1:`port` to `target`, until `go_silent`;
    connections made after it are forwarded."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL)  # so `close` ends the accepting thread
        self.port: int = self._listener.getsockname()[1]
        self.links: list[Link] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="silent-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            link = Link(client, socket.create_connection(self.target))
            self.links.append(link)
            threading.Thread(target=link.forward, name="silent-proxy-link", daemon=True).start()

    def go_silent(self) -> None:
        """Every connection open now goes silent."""
        for link in list(self.links):
            link.go_silent()

    def close(self) -> None:
        """Stop accepting and close every connection (each end learns of it)."""
        self._closed.set()
        self._listener.close()
        for link in list(self.links):
            link.close()
