"""The loader benchmark's floor: the rows the baseline writes for each user (the user, the
membership, the first message) read from the same file and written in bulk, in one
transaction, from the benchmark's own process: `executemany` on SQLite, COPY on
PostgreSQL. No Drumbeat, no rule, no start-up: no design that writes these rows goes
faster, so its rate against the baseline's bounds the ratio any design can reach there."""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from drumbeat.store import open_store

USER = "workspace_id user_id email unsubscribed created_at attributes updated_at version"
MEMBER = (
    "workspace_id campaign_key user_id state position entry_count entered_at step_started_at"
    " next_due_at last_sent_at last_step attributed version"
)
MESSAGE = (
    "workspace_id dedupe_key campaign_key step_id user_id entry_count channel payload status"
    " attempts available_at created_at"
)


def run_floor(url: str, users_file: Path, users: int, now: float) -> float:
    """Seconds to read the file's first `users` lines and write their rows in bulk into the
    store at `url` (a fresh one), timed from the file's opening to the commit."""
    store = open_store(url)
    ws = store.workspace_id("default")
    sqlite = store.dialect == "sqlite"
    payload = orjson.dumps({"subject": "Welcome", "body": "Hi"}).decode()
    raw: Any = store.engine.raw_connection()
    try:
        began = time.perf_counter()
        tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
            "users": (USER.split(), []),
            "memberships": (MEMBER.split(), []),
            "outbox": (MESSAGE.split(), []),
        }
        with users_file.open("rb") as handle:
            for line in islice(handle, users):
                call = orjson.loads(line)
                user, traits = call["user_id"], call["traits"]
                attributes = orjson.dumps(traits).decode()
                tables["users"][1].append(
                    (ws, user, traits["email"], False, now, attributes, now, 1)
                )
                member = (ws, "loader", user, "active", "steps[1]", 1, now, now, now, now)
                tables["memberships"][1].append((*member, "welcome", False, 1))
                message = (ws, f"loader/{user}", "loader", "welcome", user, 1, "email")
                tables["outbox"][1].append((*message, payload, "pending", 0, now, now))
        cursor = raw.cursor()
        if sqlite:
            cursor.execute("BEGIN IMMEDIATE")
        for table, (columns, rows) in tables.items():
            names = ", ".join(columns)
            if sqlite:
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            else:
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        if sqlite:
            cursor.execute("COMMIT")
        else:
            raw.commit()
        took = time.perf_counter() - began
        cursor.close()
    finally:
        raw.close()
        store.close()
    return took
