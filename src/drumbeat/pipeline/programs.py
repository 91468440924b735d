"""Compiled campaigns, cached per (workspace, campaign, version, attribute types)."""

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
    """Gives the compiled program of an active campaign, compiling it once per version."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[Any, ...], Program] = {}

    def get(self, ws: int, key: str) -> Program | None:
        row = self.store.campaign(ws, key)
        if row is None or row.status != "active":
            return None
        types = self.store.attribute_types(ws)
        cap = frequency_cap(self.store, ws)
        ident = (ws, key, row.version, tuple(sorted(types.items())), cap)
        program = self._cache.get(ident)
        if program is None:
            campaign = parse_campaign(row.definition)
            program = compile_program(
                campaign, types, workspace=self.store.workspace_name(ws), cap=cap
            )
            self._cache[ident] = program
        return program
