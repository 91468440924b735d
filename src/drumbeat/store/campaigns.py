"""Campaign definitions in the store: their versions (a new one moves the members waiting
at a removed position out) and their status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from drumbeat.errors import InvalidInput, Problem
from drumbeat.store.core import StoreCore
from drumbeat.store.revisions import bump_revision
from drumbeat.store.schema import campaigns, memberships

STATUSES = ("draft", "active", "paused", "archived")


@dataclass(frozen=True)
class CampaignVersion:
    """A definition to store as a campaign's next version (or its first)."""

    key: str
    name: str
    definition: Mapping[str, Any]
    status: str
    vanished: tuple[str, ...] = ()  # positions it removes: their members exit completed


@dataclass(frozen=True)
class CampaignRow:
    workspace_id: int
    key: str
    version: int
    name: str
    definition: dict[str, Any]
    status: str
    created_at: float
    updated_at: float
    watermark: float | None
    full_pass_at: float | None


def archived(key: str) -> InvalidInput:
    """The refusal of any change to an archived campaign: archive is final."""
    return InvalidInput(
        Problem(
            f"campaign {key!r}",
            "archived, and archive is final: nothing can pause, resume or change it "
            "(apply the definition under a new key)",
        ),
        what="campaign change",
    )


class CampaignStore(StoreCore):
    """Mixed into Store: campaign definitions and status."""

    def campaign(self, ws: int, key: str) -> CampaignRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(campaigns).where(campaigns.c.workspace_id == ws, campaigns.c.key == key)
            ).first()
        return CampaignRow(*row) if row is not None else None

    def campaigns(self, ws: int | None = None, *, status: str | None = None) -> list[CampaignRow]:
        query = select(campaigns).order_by(campaigns.c.workspace_id, campaigns.c.key)
        if ws is not None:
            query = query.where(campaigns.c.workspace_id == ws)
        if status is not None:
            query = query.where(campaigns.c.status == status)
        with self.engine.connect() as conn:
            return [CampaignRow(*row) for row in conn.execute(query)]

    def save_versions(self, ws: int, versions: Sequence[CampaignVersion], now: float) -> list[int]:
        """Store every version in one transaction (all or none); returns the versions written."""
        with self.writing() as conn:
            bump_revision(conn, ws)
            return [self.save_campaign(conn, ws, version, now) for version in versions]

    def save_campaign(self, conn: Connection, ws: int, new: CampaignVersion, now: float) -> int:
        """Insert version 1 or store the next version; returns the version written. An
        archived campaign gets no new version.

        A new campaign's event watermark starts at the newest event: `entry.on: {event}`
        takes events tracked from now on, not the history from before it existed. Members
        waiting at a position the version removes exit as completed; the other active
        members are due now: the engine re-reads their wait under the new version (a
        shortened wait ends sooner) and stores the right due time."""
        where = (campaigns.c.workspace_id == ws, campaigns.c.key == new.key)
        found = conn.execute(
            select(campaigns.c.version, campaigns.c.status)
            .where(*where)
            .with_for_update()  # an archive committing meanwhile waits, or is seen
        ).first()
        if found is not None and found.status == "archived":
            raise archived(new.key)
        current = None if found is None else found.version
        values = {"name": new.name, "definition": dict(new.definition), "status": new.status}
        if current is None:
            conn.execute(
                campaigns.insert().values(
                    workspace_id=ws,
                    key=new.key,
                    version=1,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
            return 1
        version = int(current) + 1
        conn.execute(
            update(campaigns)
            .where(*where)
            .values(version=version, updated_at=now, full_pass_at=None, **values)
        )
        m = memberships.c
        active = (m.workspace_id == ws, m.campaign_key == new.key, m.state == "active")
        if new.vanished:
            conn.execute(
                update(memberships)
                .where(*active, m.position.in_(list(new.vanished)))
                .values(
                    state="completed",
                    exited_at=now,
                    next_due_at=None,
                    exit_reason=f"step removed in version {version}",
                )
            )
        conn.execute(update(memberships).where(*active).values(next_due_at=now))
        return version

    def set_campaign_status(self, ws: int, key: str, status: str, now: float) -> None:
        """Change a campaign's status; an archived campaign stays archived (archiving it
        again changes nothing)."""
        if status not in STATUSES:
            raise InvalidInput(f"status {status!r}: use one of {', '.join(STATUSES)}")
        with self.writing() as conn:
            bump_revision(conn, ws)
            current = conn.execute(
                select(campaigns.c.status)
                .where(campaigns.c.workspace_id == ws, campaigns.c.key == key)
                .with_for_update()  # two status changes at once: the second sees the first
            ).scalar()
            if current is None:
                raise InvalidInput(f"no campaign {key!r} in this workspace")
            if current == "archived":
                if status == "archived":
                    return
                raise archived(key)
            conn.execute(
                update(campaigns)
                .where(campaigns.c.workspace_id == ws, campaigns.c.key == key)
                .values(status=status, updated_at=now)
            )
