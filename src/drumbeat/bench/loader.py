"""`drumbeat bench loader`: N users from a file to the first message of each queued, on a
fresh store, against a one-user-at-a-time loader (the design Drumbeat replaces).

Drumbeat: the commands a user types, each run as a new process and timed whole (start-up,
migrations check and all): `drumbeat import users FILE`, `drumbeat campaign apply FILE
--activate`, `drumbeat advance` over as many hourly ticks as the governor's ramp takes to
let every user into the new campaign (one up to 50,000 users, with the defaults), which
enters every user and queues their first message. Twice, on two fresh stores: with
`advance --no-send`, the messages left queued as the baseline leaves them (the comparison,
like for like), and with `advance` sending what is due too (to the file channel here: work
the baseline does not do, shown beside it). The virtual clock is set before, untimed: it
stands in for the real clock.

The baseline, written for this benchmark and not product code: for each line of the same
file, upsert the user, evaluate the audience for that user with one query, insert the
membership and the outbox row, commit; plain SQL through the store's own connection, run in
this process on another fresh store. Its figure leaves out its start-up. Its cost per user is
flat (one commit a user), so it may be measured on the file's first `baseline_users` only, to
measure Drumbeat at sizes whose baseline would take hours: its rate on the first and on the
second half of those users is shown, so the flatness is seen, not assumed. Beside both, the
bulk-write floor (`loader_floor.py`): the same rows written in bulk, as far as any design
could go against the baseline.

A fresh store is a new SQLite file, or a new PostgreSQL database created next to the one
`--postgres` names, called after it (`NAME_loader_drumbeat_…`; the URL's user needs
CREATEDB), dropped at the end.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from drumbeat.bench.databases import fresh_database
from drumbeat.bench.loader_floor import run_floor
from drumbeat.bench.report import Figure
from drumbeat.bench.startup import drumbeat_argv
from drumbeat.config import Settings
from drumbeat.model.attributes import format_timestamp
from drumbeat.store import open_store

START = "2026-03-02T00:00:00Z"
NOW = 1_772_409_600.0  # START, epoch seconds
TICK = 3600.0  # `advance --every 1h`
CAMPAIGN = {
    "key": "loader",
    "name": "Everyone on the free plan",
    "audience": {"attr": "plan", "eq": "free"},
    "steps": [
        {"send": {"id": "welcome", "channel": "email", "subject": "Welcome", "body": "Hi"}},
        {"wait": "2d"},
        {"send": {"id": "follow-up", "channel": "email", "subject": "Still there?", "body": "Hi"}},
    ],
}
# The baseline's statements, `?` for a parameter; per backend where SQL differs. Its upsert
# marks a user changed in every name (`names_after` NULL, `store/names.py`): it keeps no names.
UPSERT = (
    "INSERT INTO users (workspace_id, user_id, email, timezone, unsubscribed, created_at,"
    " last_seen_at, attributes, updated_at, version) VALUES (?, ?, ?, NULL, {false}, ?, NULL,"
    " {json}, ?, 1) ON CONFLICT (workspace_id, user_id) DO UPDATE SET email = excluded.email,"
    " attributes = excluded.attributes, updated_at = excluded.updated_at,"
    " version = users.version + 1, names_after = NULL"
)
MATCH = (
    "SELECT 1 FROM users WHERE workspace_id = ? AND user_id = ? AND attributes ->> {plan} = 'free'"
)
MEMBER = (
    "INSERT INTO memberships (workspace_id, campaign_key, user_id, state, position,"
    " entry_count, entered_at, step_started_at, next_due_at, last_sent_at, last_step,"
    " attributed, version) VALUES (?, 'loader', ?, 'active', 'steps[1]', 1, ?, ?, ?, ?,"
    " 'welcome', {false}, 1) ON CONFLICT DO NOTHING"
)
MESSAGE = (
    "INSERT INTO outbox (workspace_id, dedupe_key, campaign_key, step_id, user_id,"
    " entry_count, channel, payload, status, attempts, available_at, created_at) VALUES"
    " (?, ?, 'loader', 'welcome', ?, 1, 'email', {json}, 'pending', 0, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
DIALECT = {
    "sqlite": {"false": "0", "json": "?", "plan": "'$.plan'"},
    "postgresql": {"false": "false", "json": "CAST(? AS jsonb)", "plan": "'plan'"},
}


def ramp_ticks(users: int) -> int:
    """The ticks the governor's ramp, as configured by default, takes to let `users` into a
    new campaign: `ramp_start` on its first tick, `ramp_factor` times more each next, never
    more than `campaign_batches_in_flight` batches a tick (pipeline/governor.py)."""
    default = {name: f.default for name, f in Settings.model_fields.items()}
    cap = default["campaign_batches_in_flight"] * default["batch_size"]
    ticks, entered, allowance = 0, 0, default["ramp_start"]
    while entered < users:
        entered += min(allowance, cap)
        allowance = int(allowance * default["ramp_factor"])
        ticks += 1
    return ticks


def write_users_file(path: Path, users: int) -> None:
    with path.open("wb") as out:
        for i in range(users):
            traits = {"email": f"u{i}@example.com", "plan": "free", "seats": i % 50}
            out.write(orjson.dumps({"user_id": f"u{i:08d}", "traits": traits}) + b"\n")


@contextmanager
def fresh_store(url: str | None, folder: Path, name: str) -> Iterator[str]:
    """A new SQLite file in `folder` (url None), or a new database on `url`'s server."""
    if url is None:
        yield f"sqlite:///{folder}/{name}.db"
        return
    with fresh_database(url, f"loader_{name}") as fresh:
        yield fresh


def run_drumbeat(
    url: str, users_file: Path, folder: Path, *, ticks: int, workers: int, send: bool = True
) -> tuple[dict[str, float], dict[str, float]]:
    """Wall seconds of each command, run as a user runs it, in `folder` (`advance` over
    `ticks` hourly ticks, with `workers` worker processes; with `--no-send` unless `send`),
    and, read from `drumbeat stats` afterwards, the seconds `advance` spent sending
    ("sending"); the CPU seconds of each command (user and system: steadier than wall time
    on a busy machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    env["DRUMBEAT_DATABASE_URL"] = url
    campaign_file = folder / "campaign.json"
    campaign_file.write_bytes(orjson.dumps(CAMPAIGN))

    cpu: dict[str, float] = {}

    def command(*argv: str) -> tuple[float, str]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(
            [*drumbeat_argv(), *argv], cwd=folder, env=env, capture_output=True, text=True
        )
        took = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[argv[0]] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if done.returncode != 0:
            raise RuntimeError(f"drumbeat {' '.join(argv)}: exit {done.returncode}: {done.stderr}")
        return took, done.stdout

    command("clock", "--set", START)  # untimed: stands in for the real clock
    seconds = {
        "import users": command("import", "users", str(users_file))[0],
        "campaign apply": command("campaign", "apply", str(campaign_file), "--activate")[0],
        "advance": command(
            "advance",
            "--to",
            format_timestamp(NOW + ticks * TICK),
            "--every",
            "1h",
            "--workers",
            str(workers),
            *(() if send else ("--no-send",)),
        )[0],
    }
    cpu_seconds = {name: cpu[name.split()[0]] for name in seconds}
    stages = orjson.loads(command("stats", "--by", "stage", "--format", "json")[1])["names"]
    sending = sum(s["total"] for s in stages if s["name"] == "stage.dispatch")
    return seconds | {"sending": sending}, cpu_seconds


@dataclass(frozen=True)
class Baseline:
    users: int  # the file's first `users` lines
    first_half: float  # seconds for the first users // 2 of them
    second_half: float  # seconds for the rest

    def rate(self) -> float:
        return self.users / (self.first_half + self.second_half)

    def rates_by_half(self) -> tuple[float, float]:
        half = self.users // 2
        return half / self.first_half, (self.users - half) / self.second_half


def run_baseline(url: str, users_file: Path, users: int) -> Baseline:
    """The one-user-at-a-time loader over the file's first `users` lines, timed per half
    (store opened beforehand)."""
    store = open_store(url)
    ws = store.workspace_id("default")
    words = DIALECT[store.dialect]
    statements = [s.format(**words) for s in (UPSERT, MATCH, MEMBER, MESSAGE)]
    if store.dialect == "postgresql":
        statements = [s.replace("?", "%s") for s in statements]
    upsert, match, member, message = statements
    payload = orjson.dumps({"subject": "Welcome", "body": "Hi"}).decode()
    raw: Any = store.engine.raw_connection()
    sqlite = store.dialect == "sqlite"
    half = users // 2
    try:
        cursor = raw.cursor()
        began = halfway = time.perf_counter()
        with users_file.open("rb") as handle:
            for i, line in enumerate(islice(handle, users)):
                if i == half:
                    halfway = time.perf_counter()
                call = orjson.loads(line)
                user, traits = call["user_id"], call["traits"]
                if sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                attributes = orjson.dumps(traits).decode()
                cursor.execute(upsert, (ws, user, traits["email"], NOW, attributes, NOW))
                cursor.execute(match, (ws, user))
                if cursor.fetchone() is not None:
                    cursor.execute(member, (ws, user, NOW, NOW, NOW + 172_800, NOW))
                    cursor.execute(message, (ws, f"loader/{user}", user, payload, NOW, NOW))
                if sqlite:
                    cursor.execute("COMMIT")
                else:
                    raw.commit()
        ended = time.perf_counter()
        cursor.close()
    finally:
        raw.close()
    queued = sum(store.outbox_counts(ws).values())
    store.close()
    _check(queued, users, "the baseline")
    return Baseline(users, halfway - began, ended - halfway)


def queued_by_drumbeat(url: str) -> int:
    store = open_store(url)
    try:
        return sum(
            n
            for (_, step, _), n in store.outbox_counts(store.workspace_id("default")).items()
            if step == "welcome"
        )
    finally:
        store.close()


def _check(queued: int, users: int, who: str) -> None:
    if queued != users:
        raise AssertionError(f"{who} queued {queued:,} first messages for {users:,} users")


def run(
    postgres: str | None, users: int, baseline_users: int, workers: int, folder: Path
) -> list[Figure]:
    """One backend (SQLite when `postgres` is None): Drumbeat's commands over `users` users
    (`advance --workers workers`), then the baseline over the first `baseline_users`."""
    users_file = folder / "users.jsonl"
    if not users_file.exists():
        write_users_file(users_file, users)
    backend = "sqlite" if postgres is None else "postgresql"
    ticks = ramp_ticks(users)
    runs = {}
    for send in (True, False):
        with fresh_store(postgres, folder, "drumbeat" if send else "drumbeat_queued") as url:
            work = folder / f"{backend}{'' if send else '_queued'}"
            work.mkdir(exist_ok=True)
            runs[send] = run_drumbeat(
                url, users_file, work, ticks=ticks, workers=workers, send=send
            )
            _check(queued_by_drumbeat(url), users, "Drumbeat")
    with fresh_store(postgres, folder, "baseline") as url:
        baseline = run_baseline(url, users_file, baseline_users)
    with fresh_store(postgres, folder, "floor") as url:
        floor = users / run_floor(url, users_file, users, NOW)
        _check(queued_by_drumbeat(url), users, "the bulk-write floor")
    seconds, cpu = runs[True]
    sending = seconds.pop("sending")
    queued, queued_cpu = runs[False]
    queued.pop("sending")
    sampled = "" if baseline_users == users else f" measured on its first {baseline_users:,} users"
    first, second = baseline.rates_by_half()
    half = baseline_users // 2
    figures = [
        Figure(
            f"{backend}: {users:,} users, file → first message queued, whole commands"
            f" (Drumbeat) vs one user at a time (baseline){sampled}, like for like: Drumbeat's"
            " advance with --no-send (its messages left queued, as the baseline leaves them)",
            users / sum(queued.values()),
            "users/s",
            baseline.rate(),
            "≥ 25×",
        ),
        Figure(
            f"{backend}: the same with Drumbeat's advance sending the messages too (work the"
            " baseline does not do)",
            users / sum(seconds.values()),
            "users/s",
            baseline.rate(),
        ),
        Figure(
            f"{backend}: bulk-write floor (the same rows from the same file, in bulk in one"
            f" transaction: {'executemany' if postgres is None else 'COPY'}, no start-up) vs"
            " the baseline: as far as any design could go",
            floor,
            "users/s",
            baseline.rate(),
        ),
        Figure(
            f"{backend}: Drumbeat like for like (--no-send) vs the bulk-write floor",
            users / sum(queued.values()),
            "users/s",
            floor,
        ),
        Figure(
            f"{backend}: baseline on users 1–{half:,} (first half of its {baseline_users:,})",
            None,
            "users/s",
            first,
        ),
        Figure(
            f"{backend}: baseline on users {half + 1:,}–{baseline_users:,} (second half)",
            None,
            "users/s",
            second,
        ),
    ]
    how = {
        "advance": f" ({ticks} hourly tick{'s' if ticks > 1 else ''}, {workers} worker"
        f"{'s' if workers > 1 else ''})"
    }
    for name, took in seconds.items():
        label = f"{backend}: drumbeat {name}{how.get(name, '')}"
        figures += [
            Figure(f"{label}, wall (start-up included)", took, "s"),
            Figure(f"{label}, CPU (user + system)", cpu[name], "s"),
        ]
    figures.append(
        Figure(
            f"{backend}: of which advance sending the messages (stage.dispatch, not in the"
            " baseline)",
            sending,
            "s",
        )
    )
    label = f"{backend}: drumbeat advance --no-send{how['advance']}"
    figures += [
        Figure(f"{label}, wall (start-up included)", queued["advance"], "s"),
        Figure(f"{label}, CPU (user + system)", queued_cpu["advance"], "s"),
    ]
    return figures
