"""The Store: bulk reads and writes of the store of record, one SQL code base for both databases.

Every method takes and returns batches and filters on the workspace. The few statements that
differ per database (bulk upserts) live in `sqlite.py` and `postgres.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from drumbeat import metrics
from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.attributes import STANDARD_FIELDS, AttrType
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.model.user import User
from drumbeat.store.batch_queue import BatchQueueStore
from drumbeat.store.campaigns import CampaignStore
from drumbeat.store.core import StoreCore, chunks
from drumbeat.store.erasure import ErasureStore
from drumbeat.store.event_path import EventPathStore
from drumbeat.store.indexes import AttributeIndexStore
from drumbeat.store.lanes import LaneStore
from drumbeat.store.memberships import MembershipStore
from drumbeat.store.outbox import OutboxStore
from drumbeat.store.planning import PlanningStore
from drumbeat.store.rate_limits import RateLimitStore
from drumbeat.store.revisions import RevisionStore
from drumbeat.store.schema import attribute_types, events, users, workspaces
from drumbeat.store.selections import SelectionStore
from drumbeat.store.timings import TimingStore
from drumbeat.store.workspace_settings import SettingStore

if TYPE_CHECKING:
    from drumbeat.cache import UserCache
    from drumbeat.model.rules import EventCondition, Rule

Then = Callable[[Connection], object]  # a last step of a write's transaction
TYPES_CLASH = "attribute types"  # InvalidInput.what: a write's new types clash with stored ones
_USER_VERSIONS = "SELECT user_id, version FROM users WHERE workspace_id = ? AND user_id IN_IDS"


def merge_user_records(records: Iterable[UserRecord]) -> list[UserRecord]:
    """One record per user, later calls winning field by field (a batch may name a user twice)."""
    merged: dict[str, UserRecord] = {}
    for record in records:
        earlier = merged.get(record.user_id)
        if earlier is not None:
            record = UserRecord(
                record.user_id,
                {**earlier.fields, **record.fields},
                {**earlier.attributes, **record.attributes},
            )
        merged[record.user_id] = record
    return list(merged.values())


class Store(
    CampaignStore,
    MembershipStore,
    SelectionStore,
    SettingStore,
    PlanningStore,
    RevisionStore,
    OutboxStore,
    BatchQueueStore,
    LaneStore,
    EventPathStore,
    AttributeIndexStore,
    ErasureStore,
    TimingStore,
    RateLimitStore,
    StoreCore,
):
    """Base of both backends; subclasses supply the bulk writes (`_upsert_users`, …)."""

    user_cache: UserCache | None = None  # attached by `open_store(cache=…)`

    # ---- workspaces ---------------------------------------------------------------------

    def workspace_id(self, name: str, *, create: bool = True, now: float = 0.0) -> int:
        query = select(workspaces.c.id).where(workspaces.c.name == name)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        if found is not None:
            return int(found)
        if not create:
            raise InvalidInput(f"no workspace named {name!r}", what="workspace")
        with self.writing() as conn:
            conn.execute(self._insert_ignore(workspaces).values(name=name, created_at=now))
            return int(conn.execute(query).scalar_one())

    # ---- attribute types ----------------------------------------------------------------

    def workspace_name(self, ws: int) -> str:
        with self.engine.connect() as conn:
            name = conn.execute(select(workspaces.c.name).where(workspaces.c.id == ws)).scalar()
        if name is None:
            raise InvalidInput(f"no workspace with id {ws}", what="workspace")
        return str(name)

    def declare_attribute(self, ws: int, name: str, kind: AttrType) -> None:
        """Fix an attribute's type ahead of data; refused if data already gave it another."""
        if name in STANDARD_FIELDS:
            raise InvalidInput(Problem(name, "is a standard field; its type is fixed"))
        with self.writing() as conn:
            self._register_types(conn, ws, {name: kind}, declared=True)

    def _register_types(
        self, conn: Connection, ws: int, new: Mapping[str, AttrType], *, declared: bool = False
    ) -> None:
        if not new:
            return
        conn.execute(
            self._insert_ignore(attribute_types),
            [
                {"workspace_id": ws, "name": name, "type": str(kind), "declared": declared}
                for name, kind in new.items()
            ],
        )
        stored = dict(
            conn.execute(
                select(attribute_types.c.name, attribute_types.c.type).where(
                    attribute_types.c.workspace_id == ws, attribute_types.c.name.in_(list(new))
                )
            ).all()
        )
        clashes = [
            Problem(f"attribute {name}", f"is a {stored[name]}, not a {kind}")
            for name, kind in new.items()
            if stored[name] != kind
        ]
        if clashes:
            raise InvalidInput(clashes, what=TYPES_CLASH)

    # ---- users --------------------------------------------------------------------------

    def users_changed(self, ws: int, user_ids: Sequence[str]) -> None:
        """After a commit that wrote `user_ids`: the user cache forgets them."""
        if self.user_cache is not None and user_ids:
            self.user_cache.invalidate_many(ws, user_ids)

    def write_users(
        self,
        ws: int,
        records: Sequence[UserRecord],
        now: float,
        *,
        new_types: Mapping[str, AttrType] | None = None,
        then: Then | None = None,
    ) -> int:
        """Upsert users in one transaction: given fields replace, attributes merge (None
        removes one); version and updated_at move only for users that changed. `then`
        runs last in the transaction (the event path)."""
        rows = merge_user_records(records)
        with metrics.timed("store.write_users", len(rows)), self.writing() as conn:
            self._register_types(conn, ws, new_types or {})
            written = self._upsert_users(conn, ws, rows, now)
            if then is not None:
                then(conn)
        self.users_changed(ws, [row.user_id for row in rows])
        return written

    def load_users(self, ws: int, user_ids: Sequence[str]) -> dict[str, User]:
        """The users among `user_ids` (unknown ids are left out), one query per batch;
        through the user cache if one is attached (`drumbeat.cache.read_through`)."""
        with metrics.timed("users.load", len(user_ids)):
            if self.user_cache is None:
                return self.load_users_from_store(ws, user_ids)
            from drumbeat.cache import read_through

            return read_through(self, self.user_cache, ws, user_ids)

    def load_users_from_store(self, ws: int, user_ids: Sequence[str]) -> dict[str, User]:
        with metrics.timed("store.load_users", len(user_ids)), self.engine.connect() as conn:
            return self.read_users(conn, ws, user_ids)

    def user_versions(self, ws: int, user_ids: Sequence[str]) -> dict[str, int]:
        """Each known user's version, one narrow query per batch (the memory cache's check)."""
        found: dict[str, int] = {}
        with metrics.timed("store.user_versions", len(user_ids)), self.engine.connect() as conn:
            for part in chunks(user_ids, self.batch_size):
                found.update(self._fetch_by_ids(conn, _USER_VERSIONS, (ws,), part))
        return found

    def count_users(self, ws: int) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(users).where(users.c.workspace_id == ws)
                ).scalar_one()
            )

    def holds_users(self, ws: int | None = None) -> bool:
        """Whether any workspace (or workspace `ws`) has a user."""
        query = select(users.c.user_id).limit(1)
        if ws is not None:
            query = query.where(users.c.workspace_id == ws)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    # ---- events -------------------------------------------------------------------------

    def write_events(
        self, ws: int, records: Sequence[EventRecord], now: float, *, then: Then | None = None
    ) -> int:
        """Append events received at `now` (a repeated message_id is ignored), creating the
        users not known yet; returns how many were new. Users who are known are not written:
        the planner finds them by the events' `received_at` (`event_users`). `then` runs
        last in the transaction (the event path)."""
        with metrics.timed("store.write_events", len(records)), self.writing() as conn:
            inserted = self._add_events(conn, ws, records, now)
            if then is not None:
                then(conn)
            return inserted

    def write_calls(
        self,
        ws: int,
        user_records: Sequence[UserRecord],
        event_records: Sequence[EventRecord],
        now: float,
        *,
        new_types: Mapping[str, AttrType] | None = None,
        then: Then | None = None,
    ) -> int:
        """Identify and track calls in one transaction (an API batch: all of it or none),
        `then` last in it (the event path); returns how many events were new."""
        with self.writing() as conn:
            inserted = self.write_calls_in(conn, ws, user_records, event_records, now,
                                           new_types=new_types, then=then)  # fmt: skip
        self.users_changed(ws, [record.user_id for record in user_records])
        return inserted

    def write_calls_in(
        self,
        conn: Connection,
        ws: int,
        user_records: Sequence[UserRecord],
        event_records: Sequence[EventRecord],
        now: float,
        *,
        new_types: Mapping[str, AttrType] | None = None,
        then: Then | None = None,
    ) -> int:
        """`write_calls` in `conn`'s write transaction; the caller tells `users_changed` once
        it commits. Users are written in id order: two requests that name the same users in
        other orders would otherwise lock them crosswise (deadlock)."""
        rows = sorted(merge_user_records(user_records), key=lambda record: record.user_id)
        with metrics.timed("store.write_calls", len(rows) + len(event_records)):
            self._register_types(conn, ws, new_types or {})
            if rows:
                self._upsert_users(conn, ws, rows, now)
            inserted = self._add_events(conn, ws, event_records, now) if event_records else 0
            if then is not None:
                then(conn)
        return inserted

    def count_events(self, ws: int) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(events).where(events.c.workspace_id == ws)
                ).scalar_one()
            )

    def event_counts(
        self,
        ws: int,
        user_ids: Sequence[str],
        conditions: Sequence[EventCondition],
        now: float,
        conn: Connection | None = None,
    ) -> dict[str, dict[str, int]]:
        """{user_id: {condition key: count}} for each user with a non-zero count; one query
        per batch of users for all the conditions. In `conn`'s transaction if given."""
        from drumbeat.rules.sql import event_facts_select

        facts: dict[str, dict[str, int]] = {}
        if not conditions:
            return facts
        keys = [condition.key for condition in conditions]
        with metrics.timed("store.event_counts", len(user_ids)), ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect())
            for part in chunks(user_ids, self.batch_size):
                query = event_facts_select(
                    conditions, workspace_id=ws, user_ids=list(part), now=now, dialect=self.dialect
                )
                rows: Any = conn.execute(query)
                for user_id, *counts in rows:
                    found = {key: int(n) for key, n in zip(keys, counts, strict=True) if n}
                    if found:
                        facts[user_id] = found
        return facts

    # ---- audience -----------------------------------------------------------------------

    def select_audience(
        self,
        ws: int,
        rule: Rule,
        now: float,
        *,
        after_user_id: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Ids of users matching `rule`, in id order, from after `after_user_id` (keyset)."""
        conditions = self._audience_filter(ws, rule, now)
        if after_user_id is not None:
            conditions.append(users.c.user_id > after_user_id)
        query = (
            select(users.c.user_id)
            .where(*conditions)
            .order_by(users.c.user_id)
            .limit(limit or self.batch_size)
        )
        with metrics.timed("audience.select"), self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def count_audience(self, ws: int, rule: Rule, now: float) -> int:
        query = select(func.count()).select_from(users).where(*self._audience_filter(ws, rule, now))
        with metrics.timed("audience.count"), self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # ---- per backend --------------------------------------------------------------------

    def _upsert_users(
        self, conn: Connection, ws: int, rows: Sequence[UserRecord], now: float
    ) -> int:
        raise NotImplementedError

    def _add_events(
        self, conn: Connection, ws: int, rows: Sequence[EventRecord], now: float
    ) -> int:
        """The events (a repeated message_id ignored), then their users not known yet, in id
        order (the events' key to workspaces has checked `ws`); returns how many events were
        new. Users who are known are left as they are."""
        raise NotImplementedError
