"""The load generator of `drumbeat bench api`, run as its own process (`python -m
drumbeat.bench.load SPEC`), so the server's processes and this one do not share a GIL.

SPEC is JSON: {"url", "key", "kind": "batch" | "track" | "healthz", "requests", "concurrency",
"events" (a batch's), "tag" (makes messageIds unique per run)}. It builds every body first,
warms the server up with `concurrency` requests, then sends `requests` requests from
`concurrency` connections at once and prints JSON: {"seconds", "latencies_ms"}. Any answer
but 200 ends it with exit 1 and the answer.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

USERS = 1000  # distinct user ids the events are spread over


def bodies(kind: str, count: int, events: int, tag: str) -> list[bytes | None]:
    if kind == "healthz":
        return [None] * count

    def event(n: int) -> dict[str, Any]:
        return {
            "type": "track",
            "userId": f"user-{n % USERS}",
            "event": ("viewed", "clicked", "paid")[n % 3],
            "properties": {"n": n, "plan": "pro" if n % 2 else "free"},
            "messageId": f"{tag}-{n}",
        }

    if kind == "track":
        return [orjson.dumps(event(n)) for n in range(count)]
    return [
        orjson.dumps({"batch": [event(r * events + i) for i in range(events)]})
        for r in range(count)
    ]


class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: a generator must cost far
    less per request than the server it measures (httpx spends milliseconds of CPU on one)."""

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self.host, self.port, self.head = host, port, head
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: bytes, path: bytes, body: bytes | None) -> float:
        """Latency in ms; exits the process on any answer but 200."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        length = b"" if body is None else b"Content-Length: %d\r\n" % len(body)
        began = time.perf_counter()
        self.writer.write(
            b"%s %s HTTP/1.1\r\n%s%s\r\n%s" % (method, path, self.head, length, body or b"")
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        size = int(_CONTENT_LENGTH.search(head).group(1))  # type: ignore[union-attr]
        answer = await self.reader.readexactly(size)
        if status != 200:
            sys.exit(f"{path.decode()}: {status} {answer[:500].decode(errors='replace')}")
        return (time.perf_counter() - began) * 1000

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    kind, concurrency = spec["kind"], spec["concurrency"]
    method, path = (
        (b"GET", b"/healthz") if kind == "healthz" else (b"POST", b"/v1/%s" % kind.encode())
    )
    work = bodies(kind, spec["requests"] + concurrency, spec.get("events", 1), spec["tag"])
    warm, timed = work[:concurrency], work[concurrency:]
    url = urlsplit(spec["url"])
    auth = base64.b64encode(f"{spec['key']}:".encode())
    head = b"Host: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\n" % (
        url.netloc.encode(),
        auth,
    )
    connections = [
        Connection(url.hostname or "127.0.0.1", url.port or 80, head) for _ in range(concurrency)
    ]
    await asyncio.gather(
        *(c.request(method, path, b) for c, b in zip(connections, warm, strict=True))
    )
    queue = iter(timed)
    latencies: list[float] = []

    async def worker(connection: Connection) -> None:
        for body in queue:  # shared: each connection takes the next body
            latencies.append(await connection.request(method, path, body))

    began = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    seconds = time.perf_counter() - began
    for connection in connections:
        connection.close()
    return {"seconds": seconds, "latencies_ms": latencies}


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(_run(spec))))


if __name__ == "__main__":
    main()
