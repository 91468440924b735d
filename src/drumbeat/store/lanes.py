"""What the lanes and the governor read and keep in the store: each campaign's lane row
(`campaign_lanes`), the batches in flight, and the cost of the batches finished since a
campaign was last measured. A few queries a tick, none per batch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from drumbeat import metrics
from drumbeat.store.core import StoreCore
from drumbeat.store.schema import batches, campaign_lanes

UNFINISHED = ("pending", "running")


@dataclass(frozen=True)
class LaneRow:
    """A campaign's row of `campaign_lanes`."""

    workspace_id: int
    campaign_key: str
    lane: str
    reason: str  # pinned, measured, webhook, history, default
    cost: float | None  # seconds per user, moving average; None until measured
    measured: int  # users measured
    measured_through: int  # batches up to this id were looked at
    ramp: int | None  # users it may enter next tick; None: the ramp is over
    updated_at: float


@dataclass(frozen=True)
class InFlight:
    """A campaign's unfinished (pending or running) batches in one lane."""

    workspace_id: int
    campaign_key: str
    lane: str
    batches: int
    first_id: int  # its oldest unfinished batch
    first_turn: float
    last_turn: float


@dataclass(frozen=True)
class Cost:
    """A finished batch's measure: how long it took, for how many users."""

    workspace_id: int
    campaign_key: str
    batch_id: int
    seconds: float
    users: int


class LaneStore(StoreCore):
    """Mixed into Store: the lane rows, and what the governor counts."""

    def lane_rows(self, ws: int | None = None) -> dict[tuple[int, str], LaneRow]:
        query = select(campaign_lanes)
        if ws is not None:
            query = query.where(campaign_lanes.c.workspace_id == ws)
        with self.engine.connect() as conn:
            return {(r.workspace_id, r.campaign_key): LaneRow(*r) for r in conn.execute(query)}

    def save_lane_rows(self, conn: Connection, rows: Iterable[LaneRow]) -> None:
        """Write these rows whole, over any of the same campaigns (two schedulers may write
        one at once), in `conn`'s transaction: one statement, whatever their number."""
        values = [vars(row) for row in rows]
        if not values:
            return
        insert = self._dialect_insert(campaign_lanes)
        kept = ("workspace_id", "campaign_key")
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=list(kept),
                set_={c: insert.excluded[c] for c in values[0] if c not in kept},
            ),
            values,
        )

    def last_batch_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(batches.c.id), 0))).scalar_one())

    def in_flight(self) -> list[InFlight]:
        """Every campaign's unfinished batches, by lane, in one query."""
        b = batches.c
        query = (
            select(
                b.workspace_id,
                b.campaign_key,
                b.lane,
                func.count(),
                func.min(b.id),
                func.min(b.turn),
                func.max(b.turn),
            )
            .where(b.status.in_(UNFINISHED))
            .group_by(b.workspace_id, b.campaign_key, b.lane)
        )
        with metrics.timed("store.in_flight"), self.engine.connect() as conn:
            return [InFlight(*row) for row in conn.execute(query)]

    def batch_costs(self, after: int) -> list[Cost]:
        """The batches done whose id is above `after`, oldest first, with their user count."""
        b = batches.c
        length = func.jsonb_array_length if self.dialect == "postgresql" else func.json_array_length
        query = (
            select(b.workspace_id, b.campaign_key, b.id, b.seconds, length(b.user_ids))
            .where(b.id > after, b.status == "done", b.seconds.is_not(None))
            .order_by(b.id)
        )
        with metrics.timed("store.batch_costs"), self.engine.connect() as conn:
            return [
                Cost(ws, key, int(i), float(s), int(n)) for ws, key, i, s, n in conn.execute(query)
            ]
