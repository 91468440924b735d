"""The planner: on each tick, per active campaign, find who should enter and which members
are due or changed, and cut them into batches of `batch_size` ids.

Cost follows change, not audience size: after a campaign's first full pass, entry looks only
at users changed since its watermark (plus one full pass per `full_pass_every`, for
audiences that time alone makes true, like `created_at before 3d ago`), and members are
picked by `next_due_at` or by a change to their user.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import partial
from itertools import chain

from drumbeat import metrics
from drumbeat.choices import Lane
from drumbeat.model.campaign import EventEntry
from drumbeat.pipeline.governor import Admitted, Governor
from drumbeat.pipeline.programs import Programs
from drumbeat.store import Store
from drumbeat.store.campaigns import CampaignRow
from drumbeat.store.core import chunks

# Users written just before a tick may commit just after it: look back this far so that
# none is missed (seeing a user twice is harmless: the engine decides from state).
WATERMARK_LAG = 60.0
DEFAULT_LANE = Lane.FAST  # without a governor (pipeline/governor.py), which chooses lanes


@dataclass
class Plan:
    campaign: str
    entering: int = 0
    advancing: int = 0
    batches: int = 0


class Changes:
    """What changed since a watermark, read once per (workspace, watermark) in a tick:
    campaigns planned together share their watermark, and each needs it twice or more
    (entry, and members to look at again)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._written: dict[tuple[int, float], list[str]] = {}
        self._events: dict[tuple[int, float], list[tuple[str, str]]] = {}

    def since(self, ws: int, watermark: float, events: Collection[str]) -> list[str]:
        """The users changed for a campaign: those written to, and those with new events of
        the names its rules read (a `logged_in` moves no campaign that never mentions it)."""
        key = (ws, watermark)
        if key not in self._written:
            self._written[key] = self.store.changed_users(ws, watermark)
        ids = dict.fromkeys(self._written[key])
        news = self._events_since(ws, watermark)
        ids.update((user, None) for user, name in news if name in events)
        return list(ids)

    def with_event(self, ws: int, since: float, event: str) -> list[str]:
        """The users with a new `event` (entry on an event). By time received, not by event
        id: on PostgreSQL an id is taken at insert, so an event whose transaction commits
        late could carry an id below one already seen; the watermark's lag covers it."""
        return list(dict.fromkeys(u for u, name in self._events_since(ws, since) if name == event))

    def _events_since(self, ws: int, since: float) -> list[tuple[str, str]]:
        key = (ws, since)
        if key not in self._events:
            self._events[key] = self.store.event_users(ws, since)
        return self._events[key]


def plan_campaign(
    store: Store,
    programs: Programs,
    row: CampaignRow,
    now: float,
    *,
    full_pass_every: float,
    lane: str = DEFAULT_LANE,
    changes: Changes | None = None,
    governor: Governor | None = None,
) -> Plan:
    ws, key = row.workspace_id, row.key
    result = Plan(key)
    program = programs.get(ws, key)
    if program is None:
        return result
    campaign = program.campaign
    full_pass_at = row.full_pass_at
    changes = changes or Changes(store)
    events = {condition.event for condition in program.event_conditions}
    changed = changes.since(ws, row.watermark, events) if row.watermark is not None else []
    with metrics.timed("plan.campaign"):
        if isinstance(campaign.entry.on, EventEntry):
            # events since the last tick's watermark; a campaign never planned takes those
            # received since it was made
            since = row.watermark if row.watermark is not None else row.created_at
            entering = changes.with_event(ws, since, campaign.entry.on.event)
        else:
            full = full_pass_at is None or now - full_pass_at >= full_pass_every
            reentry = campaign.entry.reentry
            entering = list(
                store.entry_candidates(
                    ws,
                    key,
                    campaign.audience,
                    now,
                    since=None if full else row.watermark,
                    reentry=None if reentry == "never" else float(reentry),
                    changed=changed,
                )
            )
            full_pass_at = now if full else full_pass_at
        due = store.due_members(ws, key, now)
        members = store.changed_members(ws, key, changed)
        # Users an unfinished batch of the campaign will work already are left out: a run
        # killed over and over planned them again each time (thousands of stale batches).
        busy = store.busy_users(ws, key)
        advancing = sorted(set(chain(due, members)) - set(entering) - busy)
        entering = sorted(set(entering) - busy)
        admitted = (
            governor.admit(row, entering, advancing)
            if governor is not None
            else Admitted(lane, entering, advancing, held=False, first_turn=0.0, step=1.0)
        )
        entering, advancing = admitted.entering, admitted.advancing
        with store.writing() as conn:
            for kind, ids in (("enter", entering), ("advance", advancing)):
                result.batches += store.create_batches(
                    conn,
                    ws,
                    key,
                    admitted.lane,
                    kind,
                    list(chunks(ids, store.batch_size)),
                    now,
                    now,
                    **admitted.turns(kind, store.batch_size),
                )
            if not admitted.held:  # else the next tick looks at the users held back again
                store.set_watermarks(
                    conn,
                    ws,
                    key,
                    watermark=now - WATERMARK_LAG,
                    full_pass_at=full_pass_at,
                )
    result.entering, result.advancing = len(entering), len(advancing)
    return result


def plan_all(
    store: Store,
    programs: Programs,
    now: float,
    *,
    full_pass_every: float,
    lane: str = DEFAULT_LANE,
    governor: Governor | None = None,
) -> list[Plan]:
    """Plan every active campaign of every workspace, from a fresh snapshot of them (the
    workers of this tick use the same snapshot). A campaign whose planning loses its
    connection is planned again (`Store.retrying`): its batches, if they were written,
    are pending and hold its users (`Store.busy_users`), so none is planned twice."""
    store.retrying(programs.refresh, "reading the campaigns")
    changes = Changes(store)
    rows = store.retrying(lambda: store.campaigns(status="active"), "reading the campaigns")
    if governor is not None:  # lanes, caps, ramps, turns
        store.retrying(partial(governor.begin_tick, rows, programs, now), "governing the tick")
    plan = partial(
        plan_campaign,
        store,
        programs,
        full_pass_every=full_pass_every,
        lane=lane,
        governor=governor,
    )
    return [
        store.retrying(partial(plan, row, now, changes=changes), f"planning {row.key}")
        for row in rows
    ]
