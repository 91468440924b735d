"""Request bodies: read up to a limit (413 past it), gunzipped if sent so, parsed as JSON."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import HTTPException, Request

MAX_CALL = 32 * 1024  # Segment's limits: 32 KB for one call, 500 KB for a batch
MAX_BATCH = 500 * 1024


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body larger than {limit // 1024} KB")


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON; the limit holds for the body as sent and, gzipped, as unpacked."""
    data = await read_body(request, limit)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The body's bytes, gunzipped if sent so; 413 past `limit` either way."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise too_large(limit)
    data = bytes(raw)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        data = _gunzip(data, limit)
    return data


def _gunzip(data: bytes, limit: int) -> bytes:
    """Unpack at most `limit` bytes: a small bomb must not unpack into memory whole."""
    unpacker = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = unpacker.decompress(data, limit + 1)
    except zlib.error as exc:
        raise HTTPException(400, f"body is not valid gzip: {exc}") from None
    if len(out) > limit:
        raise too_large(limit)
    return out
