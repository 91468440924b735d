"""Settings in the store, per workspace (the frequency cap; in the default workspace the
virtual clock and the tick in progress): JSON values by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from drumbeat.store.core import StoreCore
from drumbeat.store.driver_statement import driver_connection
from drumbeat.store.readonly import GET_SETTING, setting_value
from drumbeat.store.schema import settings


class SettingStore(StoreCore):
    """Mixed into Store: workspace settings."""

    def get_setting(self, ws: int, name: str) -> Any:
        """Through the driver's own connection: every API call reads the clock, and
        SQLAlchemy's connection and statement machinery cost ten times the query on SQLite.
        On PostgreSQL outside a transaction (autocommit for the read): one round trip, not
        BEGIN, SELECT and ROLLBACK."""
        postgres = self.dialect == "postgresql"
        sql = GET_SETTING.replace("?", "%s") if postgres else GET_SETTING
        with driver_connection(self.engine, sql) as driver:
            if postgres:
                driver.autocommit = True
            try:
                cursor = driver.cursor()
                cursor.execute(sql, (ws, name))
                row = cursor.fetchone()
                cursor.close()
            finally:
                if postgres and not driver.closed:
                    driver.autocommit = False
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
