"""What a tick's planner reads and writes once for all the campaigns of a workspace, so that
an idle tick costs the same with 10 campaigns as with 1,000: the users and events changed
since the oldest watermark, the members due in any campaign, and the watermarks moved in one
statement."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, select, tuple_, update

from drumbeat import metrics
from drumbeat.store.campaigns import CampaignRow
from drumbeat.store.core import StoreCore
from drumbeat.store.names import Written
from drumbeat.store.schema import campaigns, events, memberships, users


class PlanningStore(StoreCore):
    """Mixed into Store: the planner's reads across campaigns."""

    def active_campaigns(
        self,
        definitions: Mapping[tuple[int, str, int], dict[str, Any]],
        *,
        workspaces: Collection[int] | None = None,
    ) -> list[CampaignRow]:
        """The active campaigns (of `workspaces`, else of all), their definitions taken from
        `definitions` (by workspace, key and version) where it has them: only a new
        version's definition is read and parsed, not a thousand of them."""
        c = campaigns.c
        heads = [column for column in campaigns.columns if column.name != "definition"]
        assert heads[4].name == "status"  # the definition comes between name and status
        active: tuple[ColumnElement[bool], ...] = (c.status == "active",)
        if workspaces is not None:
            active += (c.workspace_id.in_(sorted(workspaces)),)
        order = (c.workspace_id, c.key)
        with metrics.timed("planner.campaigns"), self.engine.connect() as conn:
            rows: dict[tuple[int, str], CampaignRow | None] = {}
            for ws, key, version, name, *rest in conn.execute(
                select(*heads).where(*active).order_by(*order)
            ).all():  # one fetch, not one a row
                known = definitions.get((ws, key, version))
                rows[ws, key] = (
                    None if known is None else CampaignRow(ws, key, version, name, known, *rest)
                )
            new = [key for key, row in rows.items() if row is None]
            if new:  # read whole; a version or status changed meanwhile shows here
                query = select(campaigns).where(*active, tuple_(*order).in_(new))
                for full in conn.execute(query):
                    rows[full.workspace_id, full.key] = CampaignRow(*full)
        return [row for row in rows.values() if row is not None]

    def changed_users(self, ws: int, since: float) -> list[Written]:
        """Users written to (identify, import) at or after `since`, each with when and the
        names its writes changed (`store/names.py`): a range of `updated_at`."""
        u = users.c
        query = select(u.user_id, u.updated_at, u.names_after, u.changed_names).where(
            u.workspace_id == ws, u.updated_at >= since
        )
        with metrics.timed("planner.changed_users"), self.engine.connect() as conn:
            return [
                Written(user, at, after, names or {})
                for user, at, after, names in conn.execute(query)
            ]

    def event_users(self, ws: int, since: float) -> list[tuple[str, str, float]]:
        """Each user with events received at or after `since`, with each of their events'
        names and the latest time one was received: a range of `received_at`, grouped here
        (a GROUP BY lets the database read the whole table in another index's order)."""
        e = events.c
        query = select(e.user_id, e.name, e.received_at).where(
            e.workspace_id == ws, e.received_at >= since
        )
        latest: dict[tuple[str, str], float] = {}
        with metrics.timed("planner.event_users"), self.engine.connect() as conn:
            for user, name, at in conn.execute(query):
                if at > latest.get((user, name), -1.0):
                    latest[user, name] = at
        return [(user, name, at) for (user, name), at in latest.items()]

    def due_by_campaign(self, ws: int, now: float) -> dict[str, list[str]]:
        """The active members due at `now` in every campaign of the workspace, by campaign:
        one range of the (workspace, state, next_due_at) index, empty when none is due."""
        m = memberships.c
        query = select(m.campaign_key, m.user_id).where(
            m.workspace_id == ws, m.state == "active", m.next_due_at <= now
        )
        due: dict[str, list[str]] = {}
        with metrics.timed("planner.due_members"), self.engine.connect() as conn:
            for key, user in conn.execute(query):
                due.setdefault(key, []).append(user)
        return due

    def move_watermarks(
        self,
        moves: Mapping[int, Collection[str]],
        watermark: float,
        *,
        full_passes: Mapping[int, Collection[str]],
        now: float,
    ) -> int:
        """One UPDATE for every campaign moved this tick (`moves`: keys by workspace): their
        watermark to `watermark`, and `full_pass_at` to `now` for those in `full_passes`.
        Returns the campaigns moved."""
        moved = _pairs(moves)
        if not moved:
            return 0
        c = campaigns.c
        full = _pairs(full_passes)
        values: dict[str, object] = {"watermark": watermark}
        if full:
            in_full = tuple_(c.workspace_id, c.key).in_(full)
            values["full_pass_at"] = case((in_full, now), else_=c.full_pass_at)
        statement = update(campaigns).where(tuple_(c.workspace_id, c.key).in_(moved))
        with metrics.timed("planner.move_watermarks", len(moved)), self.writing() as conn:
            return int(conn.execute(statement.values(values)).rowcount)


def _pairs(keys: Mapping[int, Collection[str]]) -> Sequence[tuple[int, str]]:
    return [(ws, key) for ws, ws_keys in keys.items() for key in sorted(ws_keys)]
