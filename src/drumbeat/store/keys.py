"""Workspaces and their API keys. A key is shown once, when made; only its sha256 is kept.

sha256, not bcrypt: a key is 256 random bits, so there is no dictionary to try and a slow
hash buys nothing, while every request looks its key up by hash (one index probe, no work
factor on the hot path). bcrypt is for low-entropy secrets such as passwords.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from drumbeat.errors import InvalidInput, Problem
from drumbeat.store.base import Store
from drumbeat.store.schema import api_keys, workspaces

SCOPES = ("write", "admin")
_PREFIX_CHARS = 6  # of the random part, shown in `key list` to tell keys apart


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    workspace_id: int
    scope: str


def key_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_workspace(store: Store, name: str, now: float) -> int:
    """A new workspace; refused if the name is taken or blank."""
    if not name.strip() or len(name) > 100:
        raise InvalidInput(Problem("NAME", "a non-empty name of at most 100 characters"))
    with store.engine.connect() as conn:
        taken = conn.execute(select(workspaces.c.id).where(workspaces.c.name == name)).first()
    if taken is not None:
        raise InvalidInput(Problem("NAME", f"a workspace named {name!r} exists already"))
    return store.workspace_id(name, now=now)


def list_workspaces(store: Store) -> list[dict[str, Any]]:
    query = select(workspaces.c.id, workspaces.c.name, workspaces.c.created_at)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query.order_by(workspaces.c.id))]


def create_key(store: Store, ws: int, scope: str, now: float) -> tuple[int, str]:
    """(id, key): the key itself is returned here and never again."""
    if scope not in SCOPES:
        raise InvalidInput(Problem("--scope", f"{scope!r}: use one of {', '.join(SCOPES)}"))
    random_part = secrets.token_urlsafe(32)
    token = f"dbk_{scope}_{random_part}"
    row = {
        "workspace_id": ws,
        "prefix": f"dbk_{scope}_{random_part[:_PREFIX_CHARS]}",
        "hash": key_hash(token),
        "scope": scope,
        "created_at": now,
    }
    with store.writing() as conn:
        key_id = conn.execute(api_keys.insert().values(row).returning(api_keys.c.id)).scalar_one()
    return int(key_id), token


def list_keys(store: Store, ws: int) -> list[dict[str, Any]]:
    c = api_keys.c
    query = select(c.id, c.prefix, c.scope, c.created_at, c.revoked_at).where(c.workspace_id == ws)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query.order_by(c.id))]


def revoke_key(store: Store, ws: int, key_id: int, now: float) -> None:
    """Revoke a key of this workspace; refused if the workspace has no such live key."""
    c = api_keys.c
    with store.writing() as conn:
        done = conn.execute(
            update(api_keys)
            .where(c.workspace_id == ws, c.id == key_id, c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
    if not done:
        raise InvalidInput(Problem("ID", f"no live key {key_id} in this workspace"))


def find_key(store: Store, token: str) -> ApiKey | None:
    """The live key `token` is, or None."""
    c = api_keys.c
    query = select(c.id, c.workspace_id, c.scope).where(
        c.hash == key_hash(token), c.revoked_at.is_(None)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return ApiKey(int(row.id), int(row.workspace_id), str(row.scope)) if row else None
