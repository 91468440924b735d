"""What the planner selects in the store, per campaign, to cut into batches: the members
due, the changed users who are members, the users who may enter. Each by index probes whose
cost follows what changed, not the size of the campaign."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy import ColumnElement, exists, func, not_, or_, select, true, union
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.selectable import Exists, TableValuedAlias

from drumbeat import metrics
from drumbeat.store.core import StoreCore
from drumbeat.store.schema import memberships, users

if TYPE_CHECKING:
    from drumbeat.rules.sql import CompiledAudience


class SelectionStore(StoreCore):
    """Mixed into Store: the planner's selections of one campaign."""

    def _stream_ids(
        self, query: Any, name: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[str]:
        """The ids `query` selects, streamed. On PostgreSQL without JIT compilation: a full
        pass's NOT EXISTS probe a user is costed high enough for it, and compiling took
        55 ms of a 0.5 s pass over 200,000 users, the pass no faster for it."""
        with metrics.timed(name), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL jit = off")
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


def _id_table(ids: Sequence[str], dialect: str) -> TableValuedAlias:
    """`ids` as a one-column table (`value`): a JSON array on SQLite, an array on
    PostgreSQL, one parameter either way."""
    if dialect == "postgresql":
        array = sa.literal(list(ids), ARRAY(sa.String()))
        return func.unnest(array).table_valued("value").render_derived(name="given")
    return func.json_each(orjson.dumps(list(ids)).decode()).table_valued("value").alias("given")
