"""Which store the demo may write to. The demo adds synthetic users, three active campaigns
and a store-wide virtual clock: in a real store, a `drumbeat run` would then send its
messages. So it takes only a store that is new or that it made itself (marked with a setting
when it starts), and refuses any other before writing anything."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from drumbeat.errors import InvalidInput, Problem
from drumbeat.pipeline.clock import CLOCK_WORKSPACE
from drumbeat.store import Store, open_store

DEMO_MARK = "demo_store"
ELSEWHERE = "give the demo a new database, or leave out --database-url to use ./drumbeat-demo.db"


def refuse_unless_demo_store(url: str) -> None:
    """InvalidInput when the store at `url` holds users the demo did not make, or a demo
    already; reads only (the store is opened without migrating it)."""
    store = open_store(url, migrate=False)
    try:
        if not inspect(store.engine).has_table("users"):
            return  # a new store
        if store.holds_users() and not store.get_setting(CLOCK_WORKSPACE, DEMO_MARK):
            _refuse(url, f"it holds users the demo did not make: {ELSEWHERE}")
        if store.campaigns():
            _refuse(url, f"it holds campaigns already (a demo ran there?): {ELSEWHERE}")
    finally:
        store.close()


def mark_demo_store(store: Store) -> None:
    """Mark the store as the demo's, before the demo writes its first user."""
    store.set_setting(CLOCK_WORKSPACE, DEMO_MARK, True)


def _refuse(url: str, reason: str) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    raise InvalidInput(Problem(shown, reason), what="database for the demo")
