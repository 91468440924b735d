"""Compiled campaigns: a snapshot of every active campaign, taken once per tick.

Each program, and its audience as SQL (`rules.sql.compile_audience`, the time left as a
parameter), is compiled once per (workspace, campaign, version, attribute types, cap) and
reused across ticks until one of those changes; `refresh()` costs a few queries per
workspace a tick, none per campaign and none per batch.
"""

from __future__ import annotations

from typing import Any

from drumbeat.engine.program import Program, compile_program
from drumbeat.engine.timing import FrequencyCap
from drumbeat.model.attributes import AttrType
from drumbeat.model.campaign import EventEntry, parse_campaign
from drumbeat.rules.sql import CompiledAudience, compile_audience
from drumbeat.store import Store
from drumbeat.store.campaigns import CampaignRow

CAP_SETTING = "frequency_cap"


def frequency_cap(store: Store, ws: int) -> FrequencyCap | None:
    value: Any = store.get_setting(ws, CAP_SETTING)
    return FrequencyCap(int(value["limit"]), float(value["per"])) if value else None


class Programs:
    """The compiled programs of the active campaigns, as of the last `refresh()`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._compiled: dict[tuple[Any, ...], Program] = {}
        self._audiences: dict[tuple[Any, ...], CompiledAudience] = {}
        self._reads: dict[tuple[Any, ...], frozenset[str]] = {}
        self._active: dict[tuple[int, str], tuple[Program, tuple[Any, ...]]] | None = None
        self._types: dict[int, dict[str, AttrType]] = {}
        self._rows: list[CampaignRow] = []
        self._definitions: dict[tuple[int, str, int], dict[str, Any]] = {}

    def refresh(self) -> None:
        """Take a new snapshot: campaigns paused or changed since the last one show now."""
        active: dict[tuple[int, str], tuple[Program, tuple[Any, ...]]] = {}
        workspaces: dict[int, tuple[Any, ...]] = {}
        rows = self.store.active_campaigns(self._definitions)
        for row in rows:
            ws = row.workspace_id
            if ws not in workspaces:
                types = self.store.attribute_types(ws)
                workspaces[ws] = (
                    types,
                    frozenset(types.items()),  # its hash kept: idents are looked up a lot
                    frequency_cap(self.store, ws),
                    self.store.workspace_name(ws),
                )
            types, types_key, cap, name = workspaces[ws]
            ident = (ws, row.key, row.version, types_key, cap)
            program = self._compiled.get(ident)
            if program is None:
                program = compile_program(
                    parse_campaign(row.definition), types, workspace=name, cap=cap
                )
                self._compiled[ident] = program
            active[(ws, row.key)] = program, ident
        self._active = active
        kept = {ident for _, ident in active.values()}  # older versions and types let go
        if len(kept) < len(self._compiled):
            self._compiled = {i: p for i, p in self._compiled.items() if i in kept}
            self._audiences = {i: a for i, a in self._audiences.items() if i in kept}
            self._reads = {i: r for i, r in self._reads.items() if i in kept}
        self._definitions = {(r.workspace_id, r.key, r.version): r.definition for r in rows}
        self._types = {ws: parts[0] for ws, parts in workspaces.items()}
        self._rows = rows

    def rows(self) -> list[CampaignRow]:
        """The active campaigns' rows (watermarks included) read by the last `refresh()`."""
        return self._rows

    def get(self, ws: int, key: str) -> Program | None:
        """The program of an active campaign, or None (paused, archived, unknown)."""
        if self._active is None:
            self.refresh()
        assert self._active is not None
        found = self._active.get((ws, key))
        return found[0] if found is not None else None

    def reads(self, ws: int, key: str) -> frozenset[str]:
        """The event names an active campaign's rules (and its entry) read, kept like its
        program."""
        if self._active is None:
            self.refresh()
        assert self._active is not None
        program, ident = self._active[(ws, key)]
        names = self._reads.get(ident)
        if names is None:
            names = frozenset(c.event for c in program.event_conditions)
            if isinstance(program.campaign.entry.on, EventEntry):
                names |= {program.campaign.entry.on.event}
            self._reads[ident] = names
        return names

    def audience(self, ws: int, key: str) -> CompiledAudience:
        """The audience of an active campaign as SQL, compiled at its first use under this
        version and these attribute types, then kept."""
        if self._active is None:
            self.refresh()
        assert self._active is not None
        program, ident = self._active[(ws, key)]
        compiled = self._audiences.get(ident)
        if compiled is None:
            compiled = compile_audience(
                program.campaign.audience,
                types=self._types[ws],
                dialect=self.store.dialect,
                workspace_id=ws,
            )
            self._audiences[ident] = compiled
        return compiled
