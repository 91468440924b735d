"""Compiled campaigns: a snapshot of every active campaign, taken once per tick.

Each program is compiled once per (workspace, campaign, version, attribute types, cap) and
reused across ticks; `refresh()` costs a few queries per tick, none per batch.
"""

from __future__ import annotations

from typing import Any

from drumbeat.engine.program import Program, compile_program
from drumbeat.engine.timing import FrequencyCap
from drumbeat.model.campaign import parse_campaign
from drumbeat.store import Store

CAP_SETTING = "frequency_cap"


def frequency_cap(store: Store, ws: int) -> FrequencyCap | None:
    value: Any = store.get_setting(ws, CAP_SETTING)
    return FrequencyCap(int(value["limit"]), float(value["per"])) if value else None


class Programs:
    """The compiled programs of the active campaigns, as of the last `refresh()`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._compiled: dict[tuple[Any, ...], Program] = {}
        self._active: dict[tuple[int, str], Program] | None = None

    def refresh(self) -> None:
        """Take a new snapshot: campaigns paused or changed since the last one show now."""
        active: dict[tuple[int, str], Program] = {}
        workspaces: dict[int, tuple[Any, ...]] = {}
        for row in self.store.campaigns(status="active"):
            ws = row.workspace_id
            if ws not in workspaces:
                types = self.store.attribute_types(ws)
                workspaces[ws] = (
                    types,
                    frequency_cap(self.store, ws),
                    self.store.workspace_name(ws),
                )
            types, cap, name = workspaces[ws]
            ident = (ws, row.key, row.version, tuple(sorted(types.items())), cap)
            program = self._compiled.get(ident)
            if program is None:
                program = compile_program(
                    parse_campaign(row.definition), types, workspace=name, cap=cap
                )
                self._compiled[ident] = program
            active[(ws, row.key)] = program
        self._active = active

    def get(self, ws: int, key: str) -> Program | None:
        """The program of an active campaign, or None (paused, archived, unknown)."""
        if self._active is None:
            self.refresh()
        assert self._active is not None
        return self._active.get((ws, key))
