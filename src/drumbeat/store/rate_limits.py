"""Send rate limits kept in the store, shared by every process sending from it: one row a
channel holding the second it counts (`window_start`, real epoch seconds) and the messages
granted in that second. A grant is one short write transaction (the row locked on
PostgreSQL, the database on SQLite), whatever the number of messages it grants.

The caller says which second it is and how many that second allows (`channels/rate_limits.py`
does the arithmetic for every limiter); the store only counts, atomically. A caller whose
clock is behind the row's second is granted nothing: that second is gone."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from drumbeat import metrics
from drumbeat.store.core import StoreCore
from drumbeat.store.schema import rate_limits


class RateLimitStore(StoreCore):
    def take_tokens(self, channel: str, window: int, wanted: int, limit: int) -> int:
        """Grant up to `wanted` of the `limit` messages `channel` may send in second
        `window`, counting those granted before in it; how many were granted."""
        with metrics.timed("store.take_tokens"), self.writing() as conn:
            if self.dialect == "postgresql":  # a count lost in a crash is a second's: no flush
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            conn.execute(  # the channel's row, made by its first grant
                self._insert_ignore(rate_limits).values(
                    channel=channel, window_start=window, taken=0
                )
            )
            start, taken = self._locked_window(conn, channel)
            if start > window:
                return 0
            taken = taken if start == window else 0
            granted = max(0, min(wanted, limit - taken))
            conn.execute(
                update(rate_limits)
                .where(rate_limits.c.channel == channel)
                .values(window_start=window, taken=taken + granted)
            )
        return granted

    def _locked_window(self, conn: Connection, channel: str) -> tuple[int, int]:
        """The channel's (second, taken), locked until `conn`'s transaction ends on
        PostgreSQL (SQLite: the write transaction holds the database already)."""
        query = select(rate_limits.c.window_start, rate_limits.c.taken).where(
            rate_limits.c.channel == channel
        )
        if self.dialect == "postgresql":
            query = query.with_for_update()
        start, taken = conn.execute(query).one()
        return int(start), int(taken)
