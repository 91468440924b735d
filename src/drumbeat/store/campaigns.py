"""Campaign definitions and memberships in the store: versions, status, planner watermarks,
and the set-based selections the planner cuts into batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy import (
    ColumnElement,
    Connection,
    exists,
    func,
    not_,
    or_,
    select,
    true,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.selectable import Exists, TableValuedAlias

from drumbeat import metrics
from drumbeat.engine.member import Member, State
from drumbeat.errors import InvalidInput, Problem
from drumbeat.store.core import JsonRows, StoreCore
from drumbeat.store.readonly import GET_SETTING, setting_value
from drumbeat.store.revisions import bump_revision
from drumbeat.store.schema import campaigns, memberships, settings, users

if TYPE_CHECKING:
    from drumbeat.rules.sql import CompiledAudience

STATUSES = ("draft", "active", "paused", "archived")
MEMBER_COLUMNS = (
    "user_id",
    "state",
    "position",
    "entry_count",
    "entered_at",
    "step_started_at",
    "next_due_at",
    "last_sent_at",
    "last_step",
    "exited_at",
    "exit_reason",
    "attributed",
)


@dataclass(frozen=True)
class CampaignVersion:
    """A definition to store as a campaign's next version (or its first)."""

    key: str
    name: str
    definition: Mapping[str, Any]
    status: str
    vanished: tuple[str, ...] = ()  # positions it removes: their members exit completed


@dataclass(frozen=True)
class CampaignRow:
    workspace_id: int
    key: str
    version: int
    name: str
    definition: dict[str, Any]
    status: str
    created_at: float
    updated_at: float
    watermark: float | None
    full_pass_at: float | None


_UPSERT_MEMBERS = f"""
INSERT INTO memberships (workspace_id, campaign_key, {", ".join(MEMBER_COLUMNS)}, version)
VALUES (?, ?, {", ".join("?" for _ in MEMBER_COLUMNS)}, 1)
ON CONFLICT (workspace_id, campaign_key, user_id) DO UPDATE SET
{", ".join(f"{c} = excluded.{c}" for c in MEMBER_COLUMNS if c != "user_id")},
version = memberships.version + 1
"""


_MEMBER_TYPES = (
    ("workspace_id", "int"),
    ("campaign_key", "text"),
    ("user_id", "text"),
    ("state", "text"),
    ("position", "text"),
    ("entry_count", "int"),
    ("entered_at", "float8"),
    ("step_started_at", "float8"),
    ("next_due_at", "float8"),
    ("last_sent_at", "float8"),
    ("last_step", "text"),
    ("exited_at", "float8"),
    ("exit_reason", "text"),
    ("attributed", "bool"),
)
_UPSERT_MEMBERS_PG = JsonRows(
    _UPSERT_MEMBERS.replace(
        f"VALUES (?, ?, {', '.join('?' for _ in MEMBER_COLUMNS)}, 1)", "SELECT r.*, 1 FROM ROWS"
    ),
    _MEMBER_TYPES,
)


_LOAD_MEMBERS = f"""
SELECT {", ".join(MEMBER_COLUMNS)} FROM memberships
WHERE workspace_id = ? AND campaign_key = ? AND user_id IN_IDS
"""


def archived(key: str) -> InvalidInput:
    """The refusal of any change to an archived campaign: archive is final."""
    return InvalidInput(
        Problem(
            f"campaign {key!r}",
            "archived, and archive is final: nothing can pause, resume or change it "
            "(apply the definition under a new key)",
        ),
        what="campaign change",
    )


def member_from_row(row: Any) -> Member:
    values = dict(zip(MEMBER_COLUMNS, row, strict=True))
    values["state"] = State(values["state"])
    values["attributed"] = bool(values["attributed"])
    return Member(**values)


class CampaignStore(StoreCore):
    """Mixed into Store: everything about campaigns and their members."""

    # ---- definitions ------------------------------------------------------------------

    def campaign(self, ws: int, key: str) -> CampaignRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(campaigns).where(campaigns.c.workspace_id == ws, campaigns.c.key == key)
            ).first()
        return CampaignRow(*row) if row is not None else None

    def campaigns(self, ws: int | None = None, *, status: str | None = None) -> list[CampaignRow]:
        query = select(campaigns).order_by(campaigns.c.workspace_id, campaigns.c.key)
        if ws is not None:
            query = query.where(campaigns.c.workspace_id == ws)
        if status is not None:
            query = query.where(campaigns.c.status == status)
        with self.engine.connect() as conn:
            return [CampaignRow(*row) for row in conn.execute(query)]

    def save_versions(self, ws: int, versions: Sequence[CampaignVersion], now: float) -> list[int]:
        """Store every version in one transaction (all or none); returns the versions written."""
        with self.writing() as conn:
            bump_revision(conn, ws)
            return [self.save_campaign(conn, ws, version, now) for version in versions]

    def save_campaign(self, conn: Connection, ws: int, new: CampaignVersion, now: float) -> int:
        """Insert version 1 or store the next version; returns the version written. An
        archived campaign gets no new version.

        A new campaign's event watermark starts at the newest event: `entry.on: {event}`
        takes events tracked from now on, not the history from before it existed. Members
        waiting at a position the version removes exit as completed; the other active
        members are due now: the engine re-reads their wait under the new version (a
        shortened wait ends sooner) and stores the right due time."""
        where = (campaigns.c.workspace_id == ws, campaigns.c.key == new.key)
        found = conn.execute(
            select(campaigns.c.version, campaigns.c.status)
            .where(*where)
            .with_for_update()  # an archive committing meanwhile waits, or is seen
        ).first()
        if found is not None and found.status == "archived":
            raise archived(new.key)
        current = None if found is None else found.version
        values = {"name": new.name, "definition": dict(new.definition), "status": new.status}
        if current is None:
            conn.execute(
                campaigns.insert().values(
                    workspace_id=ws,
                    key=new.key,
                    version=1,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
            return 1
        version = int(current) + 1
        conn.execute(
            update(campaigns)
            .where(*where)
            .values(version=version, updated_at=now, full_pass_at=None, **values)
        )
        m = memberships.c
        active = (m.workspace_id == ws, m.campaign_key == new.key, m.state == "active")
        if new.vanished:
            conn.execute(
                update(memberships)
                .where(*active, m.position.in_(list(new.vanished)))
                .values(
                    state="completed",
                    exited_at=now,
                    next_due_at=None,
                    exit_reason=f"step removed in version {version}",
                )
            )
        conn.execute(update(memberships).where(*active).values(next_due_at=now))
        return version

    def set_campaign_status(self, ws: int, key: str, status: str, now: float) -> None:
        """Change a campaign's status; an archived campaign stays archived (archiving it
        again changes nothing)."""
        if status not in STATUSES:
            raise InvalidInput(f"status {status!r}: use one of {', '.join(STATUSES)}")
        with self.writing() as conn:
            bump_revision(conn, ws)
            current = conn.execute(
                select(campaigns.c.status)
                .where(campaigns.c.workspace_id == ws, campaigns.c.key == key)
                .with_for_update()  # two status changes at once: the second sees the first
            ).scalar()
            if current is None:
                raise InvalidInput(f"no campaign {key!r} in this workspace")
            if current == "archived":
                if status == "archived":
                    return
                raise archived(key)
            conn.execute(
                update(campaigns)
                .where(campaigns.c.workspace_id == ws, campaigns.c.key == key)
                .values(status=status, updated_at=now)
            )

    # ---- members ------------------------------------------------------------------------

    def load_members(self, ws: int, key: str, user_ids: Sequence[str]) -> dict[str, Member]:
        """The members among `user_ids`. Statistics kept fresh first (`keep_statistics`): the
        memberships a big entry writes arrive while its batches read them, and PostgreSQL,
        taking the campaign for empty, read its whole membership for each batch (the key's
        prefix, the ids as a filter): a first tick of 1M users went quadratic, its batches
        from 0.14 s to 0.54 s."""
        found: dict[str, Member] = {}
        with metrics.timed("store.load_members", len(user_ids)), self.engine.connect() as conn:
            for start in range(0, len(user_ids), self.batch_size):
                self.keep_statistics()
                part = user_ids[start : start + self.batch_size]
                for row in self._fetch_by_ids(conn, _LOAD_MEMBERS, (ws, key), part):
                    found[row[0]] = member_from_row(row)
        return found

    def write_members(self, conn: Connection, ws: int, key: str, members: Sequence[Member]) -> None:
        """Upsert memberships (the latest entry of each user)."""
        self.write_memberships(conn, ws, [(key, m) for m in members])

    def write_memberships(
        self, conn: Connection, ws: int, members: Sequence[tuple[str, Member]]
    ) -> None:
        """Upsert memberships of any campaigns, each given with its campaign's key, in one
        statement (the event path decides for several campaigns at once)."""
        if not members:
            return
        # one row a member (the last given): one statement cannot update a row twice
        members = list({(key, m.user_id): (key, m) for key, m in members}.values())
        rows = [
            (
                ws,
                key,
                m.user_id,
                str(m.state),
                m.position,
                m.entry_count,
                m.entered_at,
                m.step_started_at,
                m.next_due_at,
                m.last_sent_at,
                m.last_step,
                m.exited_at,
                m.exit_reason,
                m.attributed,
            )
            for key, m in members
        ]
        self._write_rows(conn, _UPSERT_MEMBERS, rows, _UPSERT_MEMBERS_PG)

    def members(
        self, ws: int, key: str, *, state: str | None = None, limit: int | None = None
    ) -> list[Member]:
        columns = [memberships.c[name] for name in MEMBER_COLUMNS]
        query = select(*columns).where(
            memberships.c.workspace_id == ws, memberships.c.campaign_key == key
        )
        if state is not None:
            query = query.where(memberships.c.state == state)
        query = query.order_by(memberships.c.user_id).limit(limit)
        with self.engine.connect() as conn:
            return [member_from_row(row) for row in conn.execute(query)]

    def member_counts(self, ws: int, key: str) -> dict[str, int]:
        query = (
            select(memberships.c.state, func.count())
            .where(memberships.c.workspace_id == ws, memberships.c.campaign_key == key)
            .group_by(memberships.c.state)
        )
        with self.engine.connect() as conn:
            return {state: int(n) for state, n in conn.execute(query)}

    def exit_counts(self, ws: int, key: str) -> dict[str, int]:
        """How many members left the campaign for each reason."""
        m = memberships.c
        query = (
            select(m.exit_reason, func.count())
            .where(m.workspace_id == ws, m.campaign_key == key, m.exit_reason.is_not(None))
            .group_by(m.exit_reason)
        )
        with self.engine.connect() as conn:
            return {reason: int(n) for reason, n in conn.execute(query)}

    def positions(self, ws: int, key: str) -> dict[str, int]:
        """How many active members wait at each position."""
        query = (
            select(memberships.c.position, func.count())
            .where(
                memberships.c.workspace_id == ws,
                memberships.c.campaign_key == key,
                memberships.c.state == "active",
            )
            .group_by(memberships.c.position)
        )
        with self.engine.connect() as conn:
            return {position: int(n) for position, n in conn.execute(query)}

    # ---- what the planner selects -------------------------------------------------------

    def _stream_ids(
        self, query: Any, name: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[str]:
        with metrics.timed(name), self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=self.batch_size).execute(
                query, params
            )
            yield from result.scalars()

    def due_members(self, ws: int, key: str, now: float) -> Iterator[str]:
        m = memberships.c
        return self._stream_ids(
            select(m.user_id).where(
                m.workspace_id == ws,
                m.campaign_key == key,
                m.state == "active",
                m.next_due_at <= now,
            ),
            "planner.due_members",
        )

    def changed_members(self, ws: int, key: str, changed: Sequence[str]) -> Iterator[str]:
        """The active members among the `changed` users, looked up by key: the cost follows
        the changes, not the members."""
        m = memberships.c

        def member(user_id: ColumnElement[Any]) -> ColumnElement[bool]:
            return self._each(
                m.workspace_id == ws,
                m.campaign_key == key,
                m.user_id == user_id,
                m.state == "active",
            )

        return self._probe(changed, member, "planner.changed_members")

    def entry_candidates(
        self,
        ws: int,
        key: str,
        audience: CompiledAudience,
        now: float,
        *,
        since: float | None,
        reentry: float | None,
        changed: Sequence[str] = (),
    ) -> Iterator[str]:
        """Users matching the `audience` who are not members (or may enter again): everyone
        when `since` is None (a full pass), else only users who may have changed since then —
        the `changed` users (written to since then), users moved by time alone (see
        `rules.flips`), and users become free to enter again."""
        m = memberships.c
        same_user = (
            m.workspace_id == users.c.workspace_id,
            m.campaign_key == key,
            m.user_id == users.c.user_id,
        )
        blocking = [m.state == "active"]
        blocking.append(m.exited_at > now - reentry if reentry is not None else true())
        member = self._each(*same_user, or_(*blocking))
        params = audience.params(now, since)
        # membership first: after a campaign's first pass most of its audience are members,
        # and an index probe that rules a user out is cheaper than evaluating the rule
        base = [users.c.workspace_id == ws, not_(member), audience.where]
        if since is None:
            yield from self._stream_ids(
                select(users.c.user_id).where(*base), "audience.entry_candidates", params
            )
            return
        ways = list(audience.flips)
        if reentry is not None:
            freed = select(m.user_id).where(
                m.workspace_id == ws,
                m.campaign_key == key,
                m.exited_at.between(since - reentry, now - reentry),
            )
            ways.append(users.c.user_id.in_(freed))
        # the ids first (the changed users, then one index-driven SELECT per other way a
        # user may have come to match); then the rule on those users only, by key
        ids = dict.fromkeys(changed)
        if ways:
            moved = union(
                *(select(users.c.user_id).where(users.c.workspace_id == ws, way) for way in ways)
            )
            ids.update(dict.fromkeys(self._stream_ids(moved, "audience.changed_users", params)))

        def matches(user_id: ColumnElement[Any]) -> ColumnElement[bool]:
            return self._each(users.c.user_id == user_id, *base)

        yield from self._probe(list(ids), matches, "audience.entry_candidates", params)

    def _each(self, *conditions: ColumnElement[bool]) -> Exists:
        """EXISTS (SELECT … WHERE `conditions`), run once per outer row by the index its
        conditions name, on PostgreSQL too. There an EXISTS is made a join whose plan
        follows the statistics; with none taken since a big entry (autovacuum off, or not
        yet round: a workspace is assumed to hold 0.5% of a table) the audience's NOT
        EXISTS became a nested loop over the campaign's whole membership for each user,
        quadratic: 10-30 s a tick after 20,000 entered. An OFFSET keeps the subquery a
        subplan run per row (PostgreSQL never makes one with an OFFSET a join)."""
        query = select(true()).where(*conditions)
        return exists(query.offset(0) if self.dialect == "postgresql" else query)

    def _probe(
        self,
        ids: Sequence[str],
        holds: Callable[[ColumnElement[Any]], ColumnElement[bool]],
        name: str,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """The ids for which `holds(id)` (a correlated EXISTS on the row with that key), a
        batch at a time: `SELECT value FROM ids WHERE EXISTS (…)` runs the subquery once per
        id, a primary-key probe whatever the planner's statistics say. Given `user_id IN
        (…)` beside a range that a rule names (`created_at < …`), or a plain join, SQLite
        may scan the range or the other table instead, and does when its statistics are
        older than the table's growth. PostgreSQL picks the index of a probe from its
        statistics even so (`_each`): they are kept fresh before each batch of ids
        (`keep_statistics`)."""
        with metrics.timed(name, len(ids)), self.engine.connect() as conn:
            for start in range(0, len(ids), self.batch_size):
                self.keep_statistics()
                given = _id_table(ids[start : start + self.batch_size], self.dialect)
                query = select(given.c.value).where(holds(given.c.value))
                yield from conn.execute(query, params).scalars().all()

    # ---- workspace settings (frequency cap, the virtual clock) --------------------------

    def get_setting(self, ws: int, name: str) -> Any:
        """Through the driver's own connection: every API call reads the clock, and
        SQLAlchemy's connection and statement machinery cost ten times the query on SQLite.
        On PostgreSQL outside a transaction (autocommit for the read): one round trip, not
        BEGIN, SELECT and ROLLBACK."""
        postgres = self.dialect == "postgresql"
        sql = GET_SETTING.replace("?", "%s") if postgres else GET_SETTING
        raw = self.engine.raw_connection()
        driver: Any = raw.driver_connection
        try:
            if postgres:
                driver.autocommit = True
            cursor = raw.cursor()
            cursor.execute(sql, (ws, name))
            row = cursor.fetchone()
            cursor.close()
        finally:
            if postgres:
                driver.autocommit = False
            raw.close()  # back to the pool
        return None if row is None else setting_value(row[0])

    def set_setting(self, ws: int, name: str, value: Any) -> None:
        self.set_settings(ws, {name: value})

    def set_settings(self, ws: int, values: Mapping[str, Any]) -> None:
        """Several settings in one transaction (the virtual clock and the tick in progress
        move together)."""
        # each value is wrapped in an object: SQLite gives a column typed JSON numeric
        # affinity, which would turn a bare number's JSON text into a number
        rows = [{"workspace_id": ws, "name": n, "value": {"value": v}} for n, v in values.items()]
        insert = self._dialect_insert(settings)
        with self.writing() as conn:
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["workspace_id", "name"], set_={"value": insert.excluded.value}
                ),
                rows,
            )

    def add_setting(self, ws: int, name: str, value: Any) -> Any:
        """Store `value` unless the setting is there already; the stored value either way.
        Race-free: of processes adding one setting at once, the first insert wins and every
        one reads that back (on PostgreSQL a conflicting insert waits for the first's commit)."""
        query = select(settings.c.value).where(
            settings.c.workspace_id == ws, settings.c.name == name
        )
        insert = self._insert_ignore(settings).values(
            workspace_id=ws, name=name, value={"value": value}
        )
        with self.writing() as conn:
            conn.execute(insert)
            return conn.execute(query).scalar_one()["value"]


def _id_table(ids: Sequence[str], dialect: str) -> TableValuedAlias:
    """`ids` as a one-column table (`value`): a JSON array on SQLite, an array on
    PostgreSQL, one parameter either way."""
    if dialect == "postgresql":
        array = sa.literal(list(ids), ARRAY(sa.String()))
        return func.unnest(array).table_valued("value").render_derived(name="given")
    return func.json_each(orjson.dumps(list(ids)).decode()).table_valued("value").alias("given")
