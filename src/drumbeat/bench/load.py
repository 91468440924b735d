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
import sys
import time
from typing import Any

import httpx
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


async def _send(client: httpx.AsyncClient, path: str, body: bytes | None) -> float:
    began = time.perf_counter()
    if body is None:
        reply = await client.get(path)
    else:
        reply = await client.post(path, content=body)
    if reply.status_code != 200:
        sys.exit(f"{path}: {reply.status_code} {reply.text[:500]}")
    return (time.perf_counter() - began) * 1000


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    kind, concurrency = spec["kind"], spec["concurrency"]
    path = "/healthz" if kind == "healthz" else f"/v1/{kind}"
    work = bodies(kind, spec["requests"] + concurrency, spec.get("events", 1), spec["tag"])
    warm, timed = work[:concurrency], work[concurrency:]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(
        base_url=spec["url"], auth=(spec["key"], ""), headers=headers, limits=limits, timeout=60
    ) as client:
        await asyncio.gather(*(_send(client, path, body) for body in warm))
        queue = iter(timed)
        latencies: list[float] = []

        async def worker() -> None:
            for body in queue:  # shared: each connection takes the next body
                latencies.append(await _send(client, path, body))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "latencies_ms": latencies}


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(_run(spec))))


if __name__ == "__main__":
    main()
