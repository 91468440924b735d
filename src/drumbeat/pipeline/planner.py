"""The planner: on each tick, find who should enter each active campaign and which members
are due or changed, and cut them into batches of `batch_size` ids.

Cost follows change, not audience size: after a campaign's first full pass, entry looks only
at users changed since its watermark (plus one full pass per `full_pass_every`, for
audiences that time alone makes true, like `created_at before 3d ago`), and members are
picked by `next_due_at` or by a change to their user.

And cost follows change, not the number of campaigns: a tick works from the campaigns kept
by `Programs` (read again only when a workspace's revision moves on), reads what changed in
a workspace once (`Changes`) and the members due in all its campaigns in one query
(`Store.due_by_campaign`). A changed user is looked at only by the campaigns whose rules read
what changed for them: an attribute or field written (`store/names.py`: each write keeps the
names it wrote on the user's row), or an event's name. When nothing changed it looks only at
the campaigns with members due or that time alone moves (`Agenda`), else at those something
may have moved (`looks_at`); it moves the watermarks of all of them in one statement at the
end (`Moves`), none when nothing changed. An idle tick is a handful of statements per
workspace, and no Python per campaign (`drumbeat bench idle`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
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
from drumbeat.store.names import Written

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
    changed: int = 0  # users looked at because something its rules read changed for them


Read = tuple[str, str]  # ("name", attribute or field) or ("event", name): `read_names`


@dataclass
class Cut:
    """The changes at or after one time: the users by what changed for them (`Read`), those
    whose written names are not known (any campaign may read them), and whether anything
    changed at all."""

    by_read: dict[Read, list[str]]
    unknown: list[str]
    anything: bool


class Changes:
    """What changed in a workspace, read once a tick from the oldest time any campaign asks
    for (`floors`, else the first asked): the users written to, each with when and the names
    written (`store/names.py`), and the users with new events by name, each with when; then
    cut at each campaign's watermark in memory (once per distinct watermark: campaigns
    planned together share theirs)."""

    def __init__(self, store: Store, floors: Mapping[int, float] | None = None) -> None:
        self.store = store
        self._floors = dict(floors or {})
        self._read: dict[int, tuple[float, list[Written], list[tuple[str, str, float]]]] = {}
        self._cut: dict[tuple[int, float], Cut] = {}

    def since(self, ws: int, watermark: float, reads: Collection[Read]) -> list[str]:
        """The users changed for a campaign in what its rules read (`read_names`): written to
        in an attribute or field they compare (in any, when the names written are not
        known), or with new events of a name they count or start on (a `logged_in` moves no
        campaign that never mentions it, a `plan` written none that never compares it)."""
        cut = self._at(ws, watermark)
        ids = dict.fromkeys(cut.unknown)
        for read in sorted(reads):
            ids.update(dict.fromkeys(cut.by_read.get(read, ())))
        return list(ids)

    def with_event(self, ws: int, since: float, event: str) -> list[str]:
        """The users with a new `event` (entry on an event). By time received, not by event
        id: on PostgreSQL an id is taken at insert, so an event whose transaction commits
        late could carry an id below one already seen; the watermark's lag covers it."""
        return list(self._at(ws, since).by_read.get(("event", event), ()))

    def touches(self, ws: int, since: float, reads: Collection[Read]) -> bool:
        """Whether `since` would find any user (without making the list)."""
        cut = self._at(ws, since)
        return bool(cut.unknown) or any(read in cut.by_read for read in reads)

    def any_since(self, ws: int, since: float) -> bool:
        """Whether anything at all changed: a watermark behind it moves, even for a campaign
        that reads none of it (else the next tick would read it again)."""
        return self._at(ws, since).anything

    def _at(self, ws: int, since: float) -> Cut:
        if (ws, since) not in self._cut:
            written, news = self._changes(ws, since)
            by_read: dict[Read, dict[str, None]] = {}
            unknown: dict[str, None] = {}
            for user in written:
                if user.at >= since:
                    names = user.names_since(since)
                    if names is None:
                        unknown[user.user_id] = None
                    for name in names or ():
                        by_read.setdefault(("name", name), {})[user.user_id] = None
            for user_id, name, at in news:
                if at >= since:
                    by_read.setdefault(("event", name), {})[user_id] = None
            self._cut[ws, since] = Cut(
                {read: list(users) for read, users in by_read.items()},
                list(unknown),
                bool(unknown or by_read),
            )
        return self._cut[ws, since]

    def _changes(self, ws: int, since: float) -> tuple[list[Written], list[tuple[str, str, float]]]:
        read = self._read.get(ws)
        if read is None or since < read[0]:  # asked for earlier than read: read again
            floor = min(since, self._floors.get(ws, since))
            read = (floor, self.store.changed_users(ws, floor), self.store.event_users(ws, floor))
            self._read[ws] = read
            self._cut = {cut: v for cut, v in self._cut.items() if cut[0] != ws}
        return read[1], read[2]


@dataclass
class Moves:
    """The campaigns whose watermarks move at the end of a tick, written in one statement."""

    moved: dict[int, set[str]] = field(default_factory=dict)
    full: dict[int, set[str]] = field(default_factory=dict)

    def add(self, ws: int, key: str, *, full_pass: bool = False) -> None:
        self.moved.setdefault(ws, set()).add(key)
        if full_pass:
            self.full.setdefault(ws, set()).add(key)

    def write(self, store: Store, programs: Programs, now: float) -> int:
        """Write the moves, and keep them in `programs`' snapshot."""
        watermark = now - WATERMARK_LAG
        moved = store.move_watermarks(self.moved, watermark, full_passes=self.full, now=now)
        programs.moved(self.moved, watermark, full_passes=self.full, now=now)
        return moved


def full_pass_due(row: CampaignRow, now: float, full_pass_every: float) -> bool:
    return row.full_pass_at is None or now - row.full_pass_at >= full_pass_every


def looks_at(
    programs: Programs,
    row: CampaignRow,
    now: float,
    *,
    full_pass_every: float,
    changes: Changes,
    due: Sequence[str],
) -> bool:
    """Whether anything may have moved a campaign since its watermark: members due, a first
    or a weekly full pass, time alone (relative times in its audience, or re-entry), or a
    user written to in a name it reads or a new event of a name it reads."""
    ws = row.workspace_id
    program = programs.get(ws, row.key)
    if program is None:
        return False
    if due or row.watermark is None:
        return True
    campaign = program.campaign
    if not isinstance(campaign.entry.on, EventEntry) and (
        full_pass_due(row, now, full_pass_every)
        or campaign.entry.reentry != "never"
        or programs.audience(ws, row.key).flips
    ):
        return True
    return changes.touches(ws, row.watermark, programs.reads(ws, row.key))


def plan_campaign(
    store: Store,
    programs: Programs,
    row: CampaignRow,
    now: float,
    *,
    full_pass_every: float,
    lane: str = DEFAULT_LANE,
    changes: Changes | None = None,
    due: Sequence[str] | None = None,
    moves: Moves | None = None,
    governor: Governor | None = None,
) -> Plan:
    """Plan one campaign. `due` (its members due, read for all campaigns by `plan_all`) is
    read here when not given; its watermark is added to `moves`, or written here at once
    when none is given (after its batches: a run killed between the two plans it again, and
    its batches hold their users, `Store.busy_users`)."""
    ws, key = row.workspace_id, row.key
    result = Plan(key)
    program = programs.get(ws, key)
    if program is None:
        return result
    campaign = program.campaign
    full_pass = False
    changes = changes or Changes(store)
    reads = programs.reads(ws, key)
    changed = changes.since(ws, row.watermark, reads) if row.watermark is not None else []
    with metrics.timed("plan.campaign"):
        if isinstance(campaign.entry.on, EventEntry):
            # events since the last tick's watermark; a campaign never planned takes those
            # received since it was made
            since = row.watermark if row.watermark is not None else row.created_at
            entering = changes.with_event(ws, since, campaign.entry.on.event)
        else:
            full_pass = full_pass_due(row, now, full_pass_every)
            reentry = campaign.entry.reentry
            entering = list(
                store.entry_candidates(
                    ws,
                    key,
                    programs.audience(ws, key),
                    now,
                    since=None if full_pass else row.watermark,
                    reentry=None if reentry == "never" else float(reentry),
                    changed=changed,
                )
            )
        if due is None:
            due = list(store.due_members(ws, key, now))
        members = store.changed_members(ws, key, changed)
        # Users an unfinished batch of the campaign will work already are left out: a run
        # killed over and over planned them again each time (thousands of stale batches).
        busy = store.busy_users(ws, key) if entering or due or changed else set()
        advancing = sorted(set(chain(due, members)) - set(entering) - busy)
        entering = sorted(set(entering) - busy)
        admitted = (
            governor.admit(row, entering, advancing)
            if governor is not None
            else Admitted(lane, entering, advancing, held=False, first_turn=0.0, step=1.0)
        )
        entering, advancing = admitted.entering, admitted.advancing
        if entering or advancing:
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
    own = moves is None
    moves = Moves() if moves is None else moves
    if not admitted.held:  # else the next tick looks at the users held back again
        moves.add(ws, key, full_pass=full_pass)
    if own:
        moves.write(store, programs, now)
    result.entering, result.advancing = len(entering), len(advancing)
    result.changed = len(changed)
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
    """Plan the active campaigns of every workspace that something may have moved (a plan
    each), from the snapshot of them `programs` keeps (the workers of this tick use the
    same). A campaign whose planning loses its connection is planned again
    (`Store.retrying`): its batches, if they were written, are pending and hold its users
    (`Store.busy_users`), so none is planned twice. The watermarks move last, in one
    statement: a run killed before plans the tick again."""
    store.retrying(programs.refresh, "reading the campaigns")
    spaces = {ws: programs.agenda(ws) for ws in programs.workspaces()}
    floors = {ws: a.floor for ws, a in spaces.items() if a.floor is not None}
    changes = Changes(store, floors)
    if governor is not None:  # lanes, caps, ramps, turns
        store.retrying(partial(governor.begin_tick, programs, now), "governing the tick")
    moves = Moves()
    plans = []
    plan = partial(
        plan_campaign,
        store,
        programs,
        full_pass_every=full_pass_every,
        lane=lane,
        governor=governor,
    )
    for ws, agenda in spaces.items():
        changed = ws in floors and store.retrying(
            partial(changes.any_since, ws, floors[ws]), "reading the changes"
        )
        due = store.retrying(partial(store.due_by_campaign, ws, now), "reading the due")
        # nothing changed: only the campaigns with members due or that time alone moves
        rows = programs.rows(ws)
        if not changed:  # only the campaigns with members due, or that time alone moves
            looking = agenda.looking(now, full_pass_every) | due.keys()
            rows = [row for key in sorted(looking) if (row := programs.row(ws, key))]
        for row in rows:
            mine = due.get(row.key, ())
            every = full_pass_every
            if looks_at(programs, row, now, full_pass_every=every, changes=changes, due=mine):
                work = partial(plan, row, now, changes=changes, due=mine, moves=moves)
                plans.append(store.retrying(work, f"planning {row.key}"))
            elif row.watermark is not None and changes.any_since(ws, row.watermark):
                moves.add(ws, row.key)
    store.retrying(partial(moves.write, store, programs, now), "moving the watermarks")
    return plans
