"""`Drumbeat`'s data in: identify and track calls, one or many, and declared attribute
types. Every call of a batch is checked before any is written, and the engine runs for the
users of a small call in the same commit (`pipeline/events.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from drumbeat.client_state import ClientState
from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.held_types import HeldTypes, stale
from drumbeat.ingest.validate import HAS_NUL, NUL, Validator, shown
from drumbeat.model.attributes import AttrType
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.store.core import chunks

if TYPE_CHECKING:
    from drumbeat.pipeline.events import EventPath


class Ingestion(ClientState):
    @cached_property
    def event_path(self) -> EventPath:
        """Runs the engine for the users of an identify or track call right after it is
        written (`pipeline/events.py`); calls naming more than DRUMBEAT_EVENT_PATH_USERS
        users wait for the next tick. (The engine is loaded then: `import users` needs none.)"""
        from drumbeat.pipeline.events import EventPath

        return EventPath(self.store, max_users=self.config.event_path_users)

    @cached_property
    def _types(self) -> HeldTypes:
        return HeldTypes(self.store, self.config.api_key_cache_seconds)

    def identify(self, user_id: str, traits: Mapping[str, Any] | None = None) -> None:
        self.identify_many([{"user_id": user_id, "traits": dict(traits or {})}])

    def identify_many(self, calls: Iterable[Mapping[str, Any]]) -> int:
        """Validate every call, then write in batches; one bad call and nothing is written.
        The attribute types are held a moment (`ingest/held_types.py`)."""
        now, given = self.clock(), list(calls)
        return self._types.checking(
            self.ws, lambda types, fresh: self._identify(given, types, fresh, now)
        )

    def _identify(
        self, calls: list[Mapping[str, Any]], types: dict[str, AttrType], fresh: bool, now: float
    ) -> int:
        validator = Validator(types, now=now)
        try:
            records: list[UserRecord] = _validated(calls, validator.user)
        except InvalidInput:
            if validator.new_types and not fresh:
                raise stale() from None
            raise
        step = self.event_path.step(self.ws, records, (), now)  # in the last part's commit
        parts = list(chunks(records, self.store.batch_size))
        written = 0
        for index, part in enumerate(parts):
            new_types = validator.new_types if index == 0 else None
            then = step if index == len(parts) - 1 else None
            written += self.store.write_users(self.ws, part, now, new_types=new_types, then=then)
        if validator.new_types:
            self._types.forget(self.ws)  # this client sees the types it fixed at once
        return written

    def track(
        self,
        user_id: str,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        timestamp: Any = None,
        message_id: str | None = None,
    ) -> None:
        self.track_many(
            [
                {
                    "user_id": user_id,
                    "event": event,
                    "timestamp": timestamp,
                    "properties": dict(properties or {}),
                    "message_id": message_id,
                }
            ]
        )

    def track_many(self, calls: Iterable[Mapping[str, Any]]) -> int:
        """Validate every call, then append in batches; returns how many events were new."""
        now = self.clock()
        validator = Validator({}, now=now)
        records: list[EventRecord] = _validated(calls, validator.event)
        step = self.event_path.step(self.ws, (), records, now)  # in the last part's commit
        parts = list(chunks(records, self.store.batch_size))
        return sum(
            self.store.write_events(self.ws, part, now, then=step if part is parts[-1] else None)
            for part in parts
        )

    def declare_attribute(self, name: str, kind: str | AttrType) -> None:
        if NUL in name:  # as in a call's traits
            raise InvalidInput(Problem(shown(name), f"the name {HAS_NUL}"))
        try:
            attr_type = AttrType(kind)
        except ValueError:
            choices = ", ".join(t.value for t in AttrType)
            raise InvalidInput(f"type {kind!r}: use one of {choices}") from None
        self.store.declare_attribute(self.ws, name, attr_type)
        self._types.forget(self.ws)


def _validated(calls: Iterable[Mapping[str, Any]], check: Callable[..., Any]) -> list[Any]:
    records, problems = [], []
    for index, call in enumerate(calls):
        try:
            records.append(check(call, f"[{index}]."))
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidInput(problems, what="calls (nothing was written)")
    return records
