"""The timings table: every process's query and stage timings, added up per minute.

A process's recorder (drumbeat.recorder) writes what it measured every few seconds in one
upsert that adds: counts, totals, items and bucket columns summed, the maximum kept, so
any number of processes on any number of machines write into the same rows. Reading sums
the rows of a span in SQL, exactly: the buckets are the same fixed ones everywhere."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import case, delete, func, select

from drumbeat.histogram import Histogram
from drumbeat.store.core import StoreCore
from drumbeat.store.readonly import TimingTotals, timing_totals
from drumbeat.store.schema import BUCKET_COLUMNS, timings

Key = tuple[float, int, str, str]  # minute, workspace (0: every one's), kind, name


class TimingStore(StoreCore):
    def add_timings(self, rows: Mapping[Key, Histogram]) -> None:
        """Add `rows` to the stored ones of the same key, in one transaction. In key order,
        so two processes adding at once lock rows in the same order (no deadlock)."""
        if not rows:
            return
        t = timings.c
        values = [
            {
                "minute": minute,
                "workspace_id": ws,
                "kind": kind,
                "name": name,
                "count": row.count,
                "total": row.total,
                "maximum": row.maximum,
                "items": row.items,
                **dict(zip(BUCKET_COLUMNS, row.buckets, strict=True)),
            }
            for (minute, ws, kind, name), row in sorted(rows.items())
        ]
        insert = self._dialect_insert(timings)
        added = {
            name: t[name] + insert.excluded[name]
            for name in ("count", "total", "items", *BUCKET_COLUMNS)
        }
        larger = insert.excluded.maximum > t.maximum
        added["maximum"] = case((larger, insert.excluded.maximum), else_=t.maximum)
        upsert = insert.on_conflict_do_update(index_elements=list(timings.primary_key), set_=added)

        def write() -> None:
            with self.writing() as conn:  # one statement, compiled once, run for every row
                conn.execute(upsert, values)

        self.retrying(write, "writing timings")

    def timing_totals(self, workspaces: tuple[int, ...], kind: str, since: float) -> TimingTotals:
        """The timings of `kind` of the given workspaces since `since` (epoch seconds), summed
        per name, and the minutes since then with any timing of those workspaces."""
        t = timings.c
        sums = [func.sum(t[name]) for name in BUCKET_COLUMNS]
        query = (
            select(t.name, func.sum(t["count"]), func.sum(t.total), func.max(t.maximum))
            .add_columns(func.sum(t["items"]), *sums)
            .where(t.workspace_id.in_(workspaces), t.kind == kind, t.minute >= since)
            .group_by(t.name)
            .order_by(t.name)
        )
        minutes = select(func.count(func.distinct(t.minute))).where(
            t.workspace_id.in_(workspaces), t.minute >= since
        )
        with self.engine.connect() as conn:
            return timing_totals(conn.execute(query), conn.execute(minutes).scalar_one())

    def prune_timings(self, before: float) -> int:
        """Drop the timings of the minutes before `before`; returns the rows dropped."""
        with self.writing() as conn:
            return int(conn.execute(delete(timings).where(timings.c.minute < before)).rowcount)
