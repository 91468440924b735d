"""Compiled campaigns: a snapshot of every active campaign, kept across ticks while it holds.

`refresh()` reads one small row per workspace (`Store.revisions`: its revision, which every
change to its campaigns moves on, its attribute types' count and its frequency cap) and
reads a workspace's active campaigns again only when that row changed: an idle tick reads
no campaign. Each program, and its audience as SQL (`rules.sql.compile_audience`, the time
left as a parameter), is compiled once per (workspace, campaign, version, attribute types,
cap) and kept until one of those changes. The planner moves the watermarks it writes in the
snapshot too (`moved`), and asks it which campaigns time alone may move (`Agenda`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from drumbeat.engine.program import Program, compile_program, read_names
from drumbeat.engine.timing import FrequencyCap
from drumbeat.model.attributes import AttrType
from drumbeat.model.campaign import EventEntry, parse_campaign
from drumbeat.rules.sql import CompiledAudience, compile_audience
from drumbeat.store import Store
from drumbeat.store.campaigns import CampaignRow
from drumbeat.store.revisions import CAP_SETTING, Revision

__all__ = ["CAP_SETTING", "Agenda", "Programs", "frequency_cap"]


def frequency_cap(store: Store, ws: int) -> FrequencyCap | None:
    return _cap(store.get_setting(ws, CAP_SETTING))


def _cap(value: Any) -> FrequencyCap | None:
    return FrequencyCap(int(value["limit"]), float(value["per"])) if value else None


@dataclass(frozen=True)
class Agenda:
    """What may move a workspace's campaigns without any change to its users or events:
    `restless` campaigns look every tick (never planned, a relative time in the audience,
    re-entry); `passes` wait for their full pass, the oldest of them at `first_pass`. And
    `floor`, the oldest time its changes are read from (its oldest watermark, or the
    creation of a campaign entered on an event and not planned yet)."""

    restless: tuple[str, ...]
    passes: Mapping[str, float]  # full_pass_at by key (None: at once, as -inf)
    first_pass: float
    floor: float | None

    def looking(self, now: float, full_pass_every: float) -> set[str]:
        """The campaigns time alone may have moved at `now`."""
        keys = set(self.restless)
        if now - self.first_pass >= full_pass_every:
            keys.update(k for k, at in self.passes.items() if now - at >= full_pass_every)
        return keys


@dataclass
class Workspace:
    """One workspace's snapshot, as of its `revision`."""

    revision: Revision
    types: dict[str, AttrType]
    rows: dict[str, CampaignRow]
    programs: dict[str, tuple[Program, tuple[Any, ...]]] = field(default_factory=dict)
    agenda: Agenda | None = None  # worked out at first use after a change


class Programs:
    """The compiled programs of the active campaigns, as of the last `refresh()`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._compiled: dict[tuple[Any, ...], Program] = {}
        self._audiences: dict[tuple[Any, ...], CompiledAudience] = {}
        self._reads: dict[tuple[Any, ...], frozenset[tuple[str, str]]] = {}
        self._workspaces: dict[int, Workspace] | None = None
        self._rows: list[CampaignRow] | None = None
        self.epoch = 0  # moves on whenever a workspace's campaigns were read again

    def refresh(self) -> None:
        """Campaigns paused or changed since the last snapshot show now (in any process:
        the workspace's revision moved on). One statement when nothing changed."""
        revisions = self.store.revisions()
        kept = self._workspaces or {}
        stale = [ws for ws, rev in revisions.items() if ws not in kept or kept[ws].revision != rev]
        if self._workspaces is not None and not stale and len(kept) == len(revisions):
            return
        known = {(r.workspace_id, r.key, r.version): r.definition for r in self.rows()}
        fresh: dict[int, dict[str, CampaignRow]] = {ws: {} for ws in stale}
        for row in self.store.active_campaigns(known, workspaces=stale) if stale else []:
            fresh[row.workspace_id][row.key] = row
        workspaces = {ws: kept[ws] for ws in revisions if ws not in fresh}
        for ws, rows in fresh.items():
            types = self.store.attribute_types(ws) if rows else {}
            workspaces[ws] = self._compile(Workspace(revisions[ws], types, rows))
        self._workspaces = workspaces
        self._rows = None
        self.epoch += 1
        idents = {ident for w in workspaces.values() for _, ident in w.programs.values()}
        if len(idents) < len(self._compiled):  # older versions and types let go
            self._compiled = {i: p for i, p in self._compiled.items() if i in idents}
            self._audiences = {i: a for i, a in self._audiences.items() if i in idents}
            self._reads = {i: r for i, r in self._reads.items() if i in idents}

    def _compile(self, workspace: Workspace) -> Workspace:
        revision = workspace.revision
        cap = _cap(revision.cap)
        types_key = frozenset(workspace.types.items())
        for row in workspace.rows.values():
            ident = (row.workspace_id, row.key, row.version, types_key, cap)
            program = self._compiled.get(ident)
            if program is None:
                definition = parse_campaign(row.definition)
                program = compile_program(
                    definition, workspace.types, workspace=revision.name, cap=cap
                )
                self._compiled[ident] = program
            workspace.programs[row.key] = program, ident
        return workspace

    def _snapshot(self) -> dict[int, Workspace]:
        if self._workspaces is None:
            self.refresh()
        assert self._workspaces is not None
        return self._workspaces

    def workspaces(self) -> list[int]:
        return sorted(self._snapshot())

    def rows(self, ws: int | None = None) -> list[CampaignRow]:
        """The active campaigns' rows (watermarks included) as of the last `refresh()` and
        the watermarks moved since, of one workspace or all."""
        if ws is not None:
            found = self._snapshot().get(ws)
            return list(found.rows.values()) if found is not None else []
        if self._rows is None:
            spaces = self._workspaces or {}
            self._rows = [row for ws in sorted(spaces) for row in spaces[ws].rows.values()]
        return self._rows

    def row(self, ws: int, key: str) -> CampaignRow | None:
        found = self._snapshot().get(ws)
        return found.rows.get(key) if found is not None else None

    def get(self, ws: int, key: str) -> Program | None:
        """The program of an active campaign, or None (paused, archived, unknown)."""
        found = self._snapshot().get(ws)
        program = found.programs.get(key) if found is not None else None
        return program[0] if program is not None else None

    def reads(self, ws: int, key: str) -> frozenset[tuple[str, str]]:
        """What an active campaign's rules (and its entry) read (`read_names`), kept like
        its program."""
        program, ident = self._snapshot()[ws].programs[key]
        names = self._reads.get(ident)
        if names is None:
            names = self._reads[ident] = read_names(program)
        return names

    def audience(self, ws: int, key: str) -> CompiledAudience:
        """The audience of an active campaign as SQL, compiled at its first use under this
        version and these attribute types, then kept."""
        workspace = self._snapshot()[ws]
        program, ident = workspace.programs[key]
        compiled = self._audiences.get(ident)
        if compiled is None:
            compiled = compile_audience(
                program.campaign.audience,
                types=workspace.types,
                dialect=self.store.dialect,
                workspace_id=ws,
            )
            self._audiences[ident] = compiled
        return compiled

    def moved(
        self,
        moves: Mapping[int, Collection[str]],
        watermark: float,
        *,
        full_passes: Mapping[int, Collection[str]],
        now: float,
    ) -> None:
        """The watermarks (and full passes) the planner wrote, in the snapshot too."""
        spaces = self._snapshot()
        for ws, keys in moves.items():
            workspace = spaces.get(ws)
            if workspace is None:
                continue
            full = full_passes.get(ws, ())
            for key in keys:
                row = workspace.rows.get(key)
                if row is not None:
                    at = now if key in full else row.full_pass_at
                    workspace.rows[key] = replace(row, watermark=watermark, full_pass_at=at)
            workspace.agenda = None
        self._rows = None

    def agenda(self, ws: int) -> Agenda:
        """The workspace's `Agenda`, worked out again only after a change."""
        workspace = self._snapshot()[ws]
        if workspace.agenda is None:
            workspace.agenda = self._agenda(ws, workspace)
        return workspace.agenda

    def _agenda(self, ws: int, workspace: Workspace) -> Agenda:
        restless, passes, floor = [], {}, None
        for key, row in workspace.rows.items():
            campaign = workspace.programs[key][0].campaign
            on_event = isinstance(campaign.entry.on, EventEntry)
            since = row.created_at if on_event and row.watermark is None else row.watermark
            if since is not None:
                floor = since if floor is None else min(floor, since)
            if row.watermark is None:
                restless.append(key)
            elif not on_event:
                if campaign.entry.reentry != "never" or self.audience(ws, key).flips:
                    restless.append(key)
                else:
                    at = row.full_pass_at
                    passes[key] = -float("inf") if at is None else at
        first = min(passes.values(), default=float("inf"))
        return Agenda(tuple(restless), passes, first, floor)
