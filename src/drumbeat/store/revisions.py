"""What a process that keeps compiled campaigns across ticks reads to know they still hold:
per workspace, one small row, whatever its number of campaigns.

A workspace's `revision` moves on in the transaction of every change to its campaigns (a new
version, a status: `bump_revision`, taken first, so that two changes of one workspace's
campaigns queue on it rather than on each other's campaign rows). Read beside it: the
workspace's name, how many attribute types it has (a type is added, never changed), and its
frequency cap. A process compares the row with the one it compiled under; the campaigns of
a workspace whose row is the same are as it read them (their watermarks aside, which the
planner moves itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exists, func, select, update

from drumbeat import metrics
from drumbeat.store.core import StoreCore
from drumbeat.store.schema import attribute_types, campaigns, settings, workspaces

CAP_SETTING = "frequency_cap"


@dataclass(frozen=True)
class Revision:
    """A workspace's row: when it is the same, so are its active campaigns and what they
    are compiled with."""

    workspace_id: int
    name: str
    campaigns: int  # workspaces.revision
    types: int  # attribute types declared or seen
    cap: Any  # the frequency cap setting's value, or None


def _revisions() -> Any:
    w, t, s, c = workspaces.c, attribute_types.c, settings.c, campaigns.c
    types = select(func.count()).where(t.workspace_id == w.id).scalar_subquery()
    cap = select(s.value).where(s.workspace_id == w.id, s.name == CAP_SETTING).scalar_subquery()
    active = exists().where(c.workspace_id == w.id, c.status == "active")
    # a workspace no campaign was ever saved in has revision 0: nothing to plan
    return select(w.id, w.name, w.revision, types, cap).where(w.revision > 0, active)


_REVISIONS = _revisions()


def bump_revision(conn: Connection, ws: int) -> None:
    """Move the workspace's revision on, in `conn`'s transaction (before its campaign
    changes: the workspace row is the first lock they take)."""
    w = workspaces.c
    conn.execute(update(workspaces).where(w.id == ws).values(revision=w.revision + 1))


class RevisionStore(StoreCore):
    """Mixed into Store: the revision rows."""

    def revisions(self) -> dict[int, Revision]:
        """The row of every workspace with an active campaign: one statement (a workspace
        whose last active campaign was paused drops out, and its campaigns with it)."""
        with metrics.timed("planner.revisions"), self.engine.connect() as conn:
            return {
                ws: Revision(ws, name, revision, types, cap["value"] if cap else None)
                for ws, name, revision, types, cap in conn.execute(_REVISIONS)
            }
