"""The one-user event path: an identify or track call runs the engine for its users at once,
for the active campaigns whose rules read what the call changed, instead of at the next tick.

An event enters its users into the campaigns that start on it; a goal met, a `wait_until`
come true or an audience left is decided in the same call. It is bulk statements, whatever
the number of campaigns, in the call's own write transaction (`step`; `react` takes one of
its own): the workspace's campaigns' fingerprint (one
query; programs are compiled again only when it changes), the campaigns' planning locks
(PostgreSQL), the users an unfinished batch holds (left to that batch), the users, their
memberships of every campaign concerned, their event facts and recent sends, then the
memberships and messages written. Messages go to the outbox as a batch's do: by their
dedupe key, so never twice. The planner still looks at these users at its next tick (they
changed); the engine then finds nothing more to do.

How the planner and this path stay off each other's memberships: `store/event_path.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from drumbeat import metrics
from drumbeat.engine.machine import decide
from drumbeat.engine.member import Decision, OutMessage, Subject
from drumbeat.engine.program import Program, compile_program, read_names
from drumbeat.model.campaign import EventEntry, parse_campaign
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.pipeline.programs import frequency_cap
from drumbeat.store import Store
from drumbeat.store.event_path import lock_campaigns


@dataclass
class Touched:
    """What calls changed for one user: the fields and attributes given, the events tracked."""

    names: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)


def touched(users: Iterable[UserRecord], events: Iterable[EventRecord]) -> dict[str, Touched]:
    found: dict[str, Touched] = {}
    for record in users:
        t = found.setdefault(record.user_id, Touched())
        t.names.update(record.fields, record.attributes)
    for event in events:
        found.setdefault(event.user_id, Touched()).events.add(event.name)
    return found


@dataclass
class Reaction:
    """What one call's event path did."""

    decided: int = 0  # memberships changed
    entered: int = 0
    queued: int = 0  # messages new in the outbox
    held: int = 0  # (campaign, user) left to an unfinished batch


@dataclass(frozen=True)
class Concern:
    """A campaign the call concerns, and which of its users may enter."""

    program: Program
    users: tuple[str, ...]
    entering: frozenset[str]


def concerns(program: Program, changes: Mapping[str, Touched]) -> Concern | None:
    """The users of `changes` whose change the campaign's rules read: an attribute or field
    they compare, an event they count, the event it starts on. None: no one."""
    on = program.campaign.entry.on
    entry_event = on.event if isinstance(on, EventEntry) else None
    counted = {condition.event for condition in program.event_conditions}
    users, entering = [], set()
    for user_id, t in changes.items():
        starts = entry_event is not None and entry_event in t.events
        reads = bool(t.names & program.attributes) or bool(t.events & counted)
        if starts or reads:
            users.append(user_id)
            # an audience campaign lets a changed user in, as the planner's next tick would
            if starts or (entry_event is None and reads):
                entering.add(user_id)
    return Concern(program, tuple(users), frozenset(entering)) if users else None


class WorkspacePrograms:
    """The compiled programs of one workspace's active campaigns, compiled again only when
    the fingerprint (`EventPathStore.campaigns_fingerprint`) changes, and which of them read
    each attribute, field and event name."""

    def __init__(self, store: Store, ws: int) -> None:
        self.store, self.ws = store, ws
        self._fingerprint: tuple[Any, ...] | None = None
        self._programs: list[Program] = []
        self._readers: dict[tuple[str, str], list[int]] = {}  # name → programs' positions

    def reading(self, changes: Mapping[str, Touched]) -> list[Program]:
        """The programs (as of `current`, in its order) that read a name `changes` touch:
        the others are not looked at, however many campaigns are active."""
        found: set[int] = set()
        for t in changes.values():
            for name in t.names:
                found.update(self._readers.get(("name", name), ()))
            for event in t.events:
                found.update(self._readers.get(("event", event), ()))
        return [self._programs[i] for i in sorted(found)]

    def current(self, conn: Connection) -> list[Program]:
        fingerprint = self.store.campaigns_fingerprint(conn, self.ws)
        if fingerprint != self._fingerprint:
            types = self.store.attribute_types(self.ws)
            cap = frequency_cap(self.store, self.ws)
            name = self.store.workspace_name(self.ws)
            self._programs = [
                compile_program(parse_campaign(row.definition), types, workspace=name, cap=cap)
                for row in self.store.campaigns(self.ws, status="active")
            ]
            self._readers = {}
            for index, program in enumerate(self._programs):
                for read in read_names(program):
                    self._readers.setdefault(read, []).append(index)
            self._fingerprint = fingerprint
        return self._programs


class EventPath:
    """Runs the engine for the users of a call, right after the call is written."""

    def __init__(self, store: Store, *, max_users: int) -> None:
        self.store = store
        self.max_users = max_users
        self._workspaces: dict[int, WorkspacePrograms] = {}

    def step(
        self, ws: int, users: Iterable[UserRecord], events: Iterable[EventRecord], now: float
    ) -> Callable[[Connection], Reaction] | None:
        """The event path for written calls, as a step of the transaction that writes them
        (`Store.write_users(then=…)`: one commit for both); None when there is nothing to
        decide, or the calls name more than `max_users` users (an import, a big batch: left
        to the next tick)."""
        users, events = list(users), list(events)
        named = {r.user_id for r in users}
        named.update(e.user_id for e in events)
        if not named or len(named) > self.max_users:
            return None
        return lambda conn: self._react(conn, ws, users, events, now)

    def react(
        self, ws: int, users: Iterable[UserRecord], events: Iterable[EventRecord], now: float
    ) -> Reaction:
        """`step` in a transaction of its own, after the calls' commit."""
        step = self.step(ws, users, events, now)
        if step is None:
            return Reaction()

        def run() -> Reaction:
            with self.store.writing() as conn:
                return step(conn)

        return self.store.retrying(run, "event path")

    def _react(
        self,
        conn: Connection,
        ws: int,
        users: list[UserRecord],
        events: list[EventRecord],
        now: float,
    ) -> Reaction:
        store, reaction = self.store, Reaction()
        workspace = self._workspaces.setdefault(ws, WorkspacePrograms(store, ws))
        if not workspace.current(conn):  # no campaign is active: nothing to decide
            return reaction
        changes = touched(users, events)
        with metrics.timed("event_path.react", len(changes)):
            found = [concerns(p, changes) for p in workspace.reading(changes)]
            concerned = [c for c in found if c is not None]
            if not concerned:
                return reaction
            keys = [c.program.key for c in concerned]
            ids = sorted({u for c in concerned for u in c.users})
            lock_campaigns(conn, ws, keys)
            held = store.held_users(conn, ws, keys, ids)
            reaction.held = len(held)
            decided = self._decide(conn, ws, concerned, held, ids, now)
            store.write_memberships(conn, ws, [(key, d.member) for key, d in decided])
            messages = [(key, m) for key, d in decided for m in d.messages]
            reaction.queued = store.insert_campaign_messages(conn, ws, messages)
        reaction.decided = len(decided)
        reaction.entered = sum(d.entered for _, d in decided)
        return reaction

    def _decide(
        self,
        conn: Connection,
        ws: int,
        concerned: list[Concern],
        held: set[tuple[str, str]],
        ids: list[str],
        now: float,
    ) -> list[tuple[str, Decision]]:
        """Load the users and their state in bulk and run each campaign's engine, in turn:
        the messages one campaign queues count towards the next one's frequency cap."""
        store = self.store
        users = store.read_users(conn, ws, ids)
        members = store.members_of(conn, ws, [c.program.key for c in concerned], ids)
        conditions = {e.key: e for c in concerned for e in c.program.event_conditions}
        facts = store.event_counts(ws, ids, list(conditions.values()), now, conn=conn)
        capped = [c.program.cap for c in concerned if c.program.cap is not None]
        sends: dict[str, list[float]] = {}
        if capped:
            store.lock_users(conn, ws, ids)
            since = now - max(cap.per for cap in capped)
            sends = {u: list(t) for u, t in store.recent_sends(ws, ids, since, conn=conn).items()}
        decided: list[tuple[str, Decision]] = []
        for c in concerned:
            key = c.program.key
            subjects = [
                Subject(
                    users[u],
                    members.get((key, u)),
                    facts.get(u, {}),
                    tuple(sends.get(u, ())),
                    may_enter=u in c.entering,
                )
                for u in c.users
                if u in users and (key, u) not in held
            ]
            for decision in decide(c.program, subjects, now):
                decided.append((key, decision))
                _sent(sends, decision.messages)
        return decided


def _sent(sends: dict[str, list[float]], messages: Iterable[OutMessage]) -> None:
    for m in messages:
        sends.setdefault(m.user_id, []).append(m.created_at)
