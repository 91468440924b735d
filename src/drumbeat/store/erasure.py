"""Suppressed addresses and erased users.

An address is suppressed by the sha256 of its normalised form (trimmed, lower-cased): an
erased user's, a hard bounce's, a complaint's. Only the hash is kept, so the store does not
hold an erased user's address in the clear, and the dispatcher still never mails it again
(`suppressed`, one query per batch of recipients). The hash is not secret: whoever has the
store and a list of addresses can tell which are suppressed (as with any unsalted hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select

from drumbeat.store.core import StoreCore, chunks
from drumbeat.store.schema import (
    campaigns,
    events,
    inbox,
    memberships,
    outbox,
    suppressions,
    users,
)

REASONS = ("erased", "bounce", "complaint")
_SUPPRESSED = "SELECT address_hash FROM suppressions WHERE workspace_id = ? AND address_hash IN_IDS"
_ANY_SUPPRESSED = (
    select(suppressions.c.workspace_id)
    .where(suppressions.c.workspace_id == bindparam("ws"))
    .limit(1)
)


def address_hash(address: str) -> str:
    """The sha256 (hex) of the address trimmed and lower-cased: `Ada@Example.com ` and
    `ada@example.com` are one address (mail systems treat the local part so in practice)."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


class ErasureStore(StoreCore):
    def suppress(self, ws: int, addresses: Iterable[str], reason: str, now: float) -> int:
        """Suppress the addresses (a suppressed one stays as it was); how many were new."""
        rows = [
            {"workspace_id": ws, "address_hash": h, "reason": reason, "created_at": now}
            for h in sorted({address_hash(a) for a in addresses})
        ]
        if not rows:
            return 0
        with self.writing() as conn:
            return self._add_suppressions(conn, rows)

    def _add_suppressions(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Insert the rows not there yet (one multi-row statement a batch); how many."""
        added = 0
        for part in chunks(rows, self.batch_size):
            insert = self._insert_ignore(suppressions).values(list(part))
            added += len(conn.execute(insert.returning(suppressions.c.address_hash)).all())
        return added

    def suppressed(self, ws: int, addresses: Iterable[str]) -> set[str]:
        """Which of the addresses are suppressed (as given), one query per batch; none
        hashed when the workspace suppresses none (a sha256 an address: a tenth of what
        sending to the file channel costs)."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            if conn.execute(_ANY_SUPPRESSED, {"ws": ws}).first() is None:
                return found
            by_hash: dict[str, list[str]] = {}
            for address in addresses:
                by_hash.setdefault(address_hash(address), []).append(address)
            for part in chunks(sorted(by_hash), self.batch_size):
                for (hashed,) in self._fetch_by_ids(conn, _SUPPRESSED, (ws,), part):
                    found.update(by_hash[hashed])
        return found

    def user_memberships(self, ws: int, user_id: str) -> list[dict[str, Any]]:
        """The user's memberships in the workspace's campaigns, by campaign key (one probe
        of the memberships key per campaign, in one query)."""
        m = memberships.c
        keys = select(campaigns.c.key).where(campaigns.c.workspace_id == ws)
        query = (
            select(
                m.campaign_key,
                m.state,
                m.position,
                m.entry_count,
                m.entered_at,
                m.exited_at,
                m.exit_reason,
            )
            .where(m.workspace_id == ws, m.campaign_key.in_(keys), m.user_id == user_id)
            .order_by(m.campaign_key)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def erase_user(self, ws: int, user_id: str, now: float) -> bool:
        """Delete the user, their events, memberships, messages and inbox in one transaction,
        and suppress their address (hashed); False if the workspace has no such user."""
        with self.writing() as conn:
            email = conn.execute(
                select(users.c.email).where(users.c.workspace_id == ws, users.c.user_id == user_id)
            ).first()
            if email is None:
                return False
            keys = select(campaigns.c.key).where(campaigns.c.workspace_id == ws)
            for table, extra in (
                (events, ()),
                (memberships, (memberships.c.campaign_key.in_(keys),)),
                (outbox, ()),
                (inbox, ()),
                (users, ()),
            ):
                conn.execute(
                    delete(table).where(
                        table.c.workspace_id == ws, *extra, table.c.user_id == user_id
                    )
                )
            if email.email:
                row = {
                    "workspace_id": ws,
                    "address_hash": address_hash(email.email),
                    "reason": "erased",
                    "created_at": now,
                }
                self._add_suppressions(conn, [row])
        return True
