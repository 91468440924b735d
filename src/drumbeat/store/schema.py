"""The schema as data: every table of the store of record, for SQLite and PostgreSQL alike.

Every table but `workspaces` is keyed by `workspace_id` first, and every query filters on it.
Times are epoch seconds (double precision) so both databases compare them the same way.
Alembic migrations under `migrations/` must build exactly this (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, JSONB

from drumbeat.store.readonly import BUCKET_COLUMNS as BUCKET_COLUMNS  # named once

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The indexes on `users` that store/indexes.py builds and drops as live rules change: no
# revision makes them, so Alembic's comparison leaves them out (`in_schema`).
ATTRIBUTE_INDEX_PREFIX = "ix_users_attr_"


def in_schema(item: object, name: str | None, kind: str, reflected: bool, other: object) -> bool:
    """Alembic's `include_object`: all but the attribute indexes."""
    return not (kind == "index" and (name or "").startswith(ATTRIBUTE_INDEX_PREFIX))


Json = JSON().with_variant(JSONB(), "postgresql")
Epoch = Float().with_variant(DOUBLE_PRECISION(), "postgresql")
# Byte order, not locale order: keyset pagination and ids compare the same on both databases.
Key = String(255).with_variant(String(255, collation="C"), "postgresql")
AutoId = BigInteger().with_variant(Integer(), "sqlite")


def _workspace() -> Column[int]:
    return Column("workspace_id", Integer, ForeignKey("workspaces.id"), primary_key=True)


workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", Epoch, nullable=False),
    # moved on by every change to the workspace's campaigns (store/revisions.py; 0020)
    Column("revision", Integer, nullable=False, server_default=text("0")),
)

# No foreign key to workspaces: the key check fired for every user written, a fifth of a bulk
# upsert's time on PostgreSQL; each write checks its workspace once instead (revision 0003).
users = Table(
    "users",
    metadata,
    Column("workspace_id", Integer, primary_key=True),
    Column("user_id", Key, primary_key=True),
    Column("email", String(320)),
    Column("timezone", String(64)),
    Column("unsubscribed", Boolean, nullable=False),
    Column("created_at", Epoch),
    Column("last_seen_at", Epoch),
    Column("attributes", Json, nullable=False),
    Column("updated_at", Epoch, nullable=False),
    Column("version", Integer, nullable=False),
    # The names (attributes and fields) written after `names_after`, each with when (a JSON
    # object); a new user's `names_after` is when it was made. Kept by every user write
    # (store/names.py): the planner looks at a user for the campaigns that read them.
    Column("changed_names", Json),
    Column("names_after", Epoch),
    Index(None, "workspace_id", "updated_at"),
    # Time-based audiences ("created 3 days ago", "not seen for 21 days") are found by range on
    # (workspace_id, created_at) or last_seen_at, indexed only while a live rule compares the
    # field, like attributes (store/indexes.py; revisions 0007 and 0011): each such index is a
    # random insert for every user written.
)

attribute_types = Table(
    "attribute_types",
    metadata,
    _workspace(),
    Column("name", String(200), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("declared", Boolean, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("user_id", Key, nullable=False),
    Column("name", String(200), nullable=False),
    Column("ts", Epoch, nullable=False),
    Column("properties", Json, nullable=False),
    Column("message_id", String(255)),
    Column("received_at", Epoch),  # when it was written; none before revision 0005
    Index(None, "workspace_id", "user_id", "name", "ts"),
    Index(None, "workspace_id", "name", "ts"),
    Index(None, "workspace_id", "message_id", unique=True),
    Index(None, "workspace_id", "received_at"),  # the users with new events: the planner
)

# ---- campaigns (revision 0002) ----------------------------------------------------------

campaigns = Table(
    "campaigns",
    metadata,
    _workspace(),
    Column("key", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("definition", Json, nullable=False),
    Column("status", String(16), nullable=False),  # draft, active, paused, archived
    Column("created_at", Epoch, nullable=False),
    Column("updated_at", Epoch, nullable=False),
    # planner bookkeeping: users changed after `watermark` are looked at on the next tick
    Column("watermark", Epoch),
    Column("full_pass_at", Epoch),
)

# Memberships and outbox rows carry no foreign key to workspaces (revision 0022), as users
# (0003): a batch writes them for its workspace's users, and workspaces are never deleted.
memberships = Table(
    "memberships",
    metadata,
    Column("workspace_id", Integer, primary_key=True),
    Column("campaign_key", String(100), primary_key=True),
    Column("user_id", Key, primary_key=True),
    Column("state", String(16), nullable=False),  # active, converted, left_audience, ...
    Column("position", String(200), nullable=False),  # step id the member waits at
    Column("entry_count", Integer, nullable=False),
    Column("entered_at", Epoch, nullable=False),
    Column("step_started_at", Epoch, nullable=False),
    Column("next_due_at", Epoch),
    Column("last_sent_at", Epoch),
    Column("last_step", String(200)),
    Column("exited_at", Epoch),
    Column("exit_reason", String(32)),
    Column("attributed", Boolean, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False),
    # The members due in any campaign of a workspace, one range a tick (revision 0017);
    # a campaign's own due members are the same range, its key read from the index.
    Index(None, "workspace_id", "state", "next_due_at", "campaign_key"),
    sqlite_with_rowid=False,  # one b-tree by key (revision 0004)
)

# The claimable rows, as the partial indexes' predicates (and the claim's literal terms:
# a planner proves a partial index applies only from literals, not from parameters).
DUE = "status = 'pending' AND retry_at IS NULL"  # first tries, in campaign time
RETRY = "status = 'pending' AND retry_at IS NOT NULL"  # transient failures, in real time
LEASED = "status = 'sending'"  # claimed; taken again once the lease runs out

outbox = Table(
    "outbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("workspace_id", Integer, nullable=False),  # no foreign key: see memberships
    Column("dedupe_key", String(700), nullable=False, unique=True),
    Column("campaign_key", String(100), nullable=False),
    Column("step_id", String(200), nullable=False),
    Column("user_id", Key, nullable=False),
    Column("entry_count", Integer, nullable=False),
    Column("channel", String(50), nullable=False),
    Column("payload", Json, nullable=False),  # subject, body/template, channel options
    Column("status", String(16), nullable=False),  # pending, sending, sent, failed, dead
    Column("attempts", Integer, nullable=False),
    Column("available_at", Epoch, nullable=False),  # campaign time (the store's clock)
    Column("lease_until", Epoch),  # real time
    Column("retry_at", Epoch),  # real time: a transient failure's next try
    Column("fence", Integer, nullable=False, server_default="0"),  # moves on with every claim
    Column("owner", String(200)),  # the dispatching process holding its claim: "host:pid:…"
    Column("created_at", Epoch, nullable=False),
    Column("sent_at", Epoch),
    Column("provider_id", String(255)),
    Column("last_error", String(1000)),
    Index(None, "workspace_id", "user_id", "created_at"),
    # The claim's three paths (store/outbox_claims.py), each an index in its order over only the
    # rows it may take, so a claim reads what it takes whatever is pending (revision 0013).
    *(
        Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))
        for name, columns, where in (
            ("ix_outbox_due", ("available_at", "id"), DUE),
            ("ix_outbox_channel_due", ("channel", "available_at", "id"), DUE),
            ("ix_outbox_retry", ("retry_at", "id"), RETRY),
            ("ix_outbox_lease", ("lease_until", "id"), LEASED),
        )
    ),
)

batches = Table(
    "batches",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("campaign_key", String(100), nullable=False),
    Column("lane", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # enter, advance
    Column("user_ids", Json, nullable=False),
    Column("status", String(16), nullable=False),  # pending, running, done, skipped, dead
    Column("due_at", Epoch, nullable=False),  # the virtual or real time the batch is for
    Column("lease_until", Epoch),  # real time, whatever the store's clock
    Column("owner", String(200)),  # the worker holding it: "host:pid:thread"
    Column("last_error", String(1000)),  # why its last holder let go of it
    Column("fence", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Epoch, nullable=False),
    Column("finished_at", Epoch),
    Column("seconds", Float),
    # claim order: round-robin across workspaces and campaigns (pipeline/governor.py)
    Column("turn", Float, nullable=False, server_default="0"),
    # what its run did (a distributed worker's report, read back by the scheduler)
    Column("changed", Integer),
    Column("entered", Integer),
    Column("messages", Integer),
    Index(None, "status", "lane", "turn", "id"),
)

# ---- lanes (revision 0018) --------------------------------------------------------------

# Per campaign: the lane its batches go to and why (pipeline/lanes.py), the moving average
# of its batches' seconds per user, and its ramp (users it may enter on its next tick).
campaign_lanes = Table(
    "campaign_lanes",
    metadata,
    _workspace(),
    Column("campaign_key", String(100), primary_key=True),
    Column("lane", String(32), nullable=False),
    Column("reason", String(16), nullable=False),  # pinned, measured, webhook, history, default
    Column("cost", Float),  # seconds per user, moving average; none until measured
    Column("measured", Integer, nullable=False),  # users measured
    Column("measured_through", BigInteger, nullable=False),  # the last batch id looked at
    Column("ramp", Integer),  # users it may enter next tick; none: the ramp is over
    Column("updated_at", Epoch, nullable=False),
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("user_id", Key, nullable=False),
    Column("message_id", String(700), nullable=False, unique=True),
    Column("campaign_key", String(100), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("body", String, nullable=False),
    Column("created_at", Epoch, nullable=False),
    Column("read_at", Epoch),
    Index(None, "workspace_id", "user_id", "id"),
)

settings = Table(
    "settings",
    metadata,
    _workspace(),
    Column("name", String(100), primary_key=True),
    Column("value", Json, nullable=False),
)

# ---- API keys (revision 0010) -----------------------------------------------------------

# Only the sha256 of a key is kept: keys are 256 random bits, so a fast hash is safe (no
# dictionary to try), and a lookup by hash is one index probe per request.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("prefix", String(32), nullable=False),  # shown in `key list`: dbk_write_ab12cd
    Column("hash", String(64), nullable=False, unique=True),
    Column("scope", String(16), nullable=False),  # write, admin
    Column("created_at", Epoch, nullable=False),
    Column("revoked_at", Epoch),
    Index(None, "workspace_id", "id"),
)

# ---- suppressions (revision 0014) ------------------------------------------------------

# Addresses never to mail again, by the sha256 of the normalised address (store/erasure.py):
# an erased user's address, a hard bounce, a complaint. Only the hash is kept, so erasing a
# user leaves no address in the clear; the dispatcher checks it at send time, in bulk.
suppressions = Table(
    "suppressions",
    metadata,
    _workspace(),
    Column("address_hash", String(64), primary_key=True),
    Column("reason", String(16), nullable=False),  # erased, bounce, complaint
    Column("created_at", Epoch, nullable=False),
)

# ---- timings (revision 0015) ------------------------------------------------------------

# Every process's query and stage timings, added up per minute (real time), workspace (0:
# not one workspace's: queries and stages), kind (query, stage, campaign, lane, count) and
# name; the buckets are drumbeat.histogram's, one column each, so that an upsert adds
# them up in SQL and `drumbeat stats` sums them over any span exactly (store/timings.py).

timings = Table(
    "timings",
    metadata,
    Column("minute", Epoch, primary_key=True),
    Column("workspace_id", Integer, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("total", Epoch, nullable=False),
    Column("maximum", Epoch, nullable=False),
    Column("items", BigInteger, nullable=False),
    *(Column(name, Integer, nullable=False) for name in BUCKET_COLUMNS),
)

# ---- send rate limits (revision 0016) ---------------------------------------------------

# The messages each rate-limited channel may still send in the current second, shared by
# every process sending from this store (channels/rate_limits.py). One row a channel, moved
# on to each new second: no workspace, as a limit is the provider's, whoever's the message.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("channel", String(50), primary_key=True),
    Column("window_start", BigInteger, nullable=False),  # epoch second, real time
    Column("taken", Integer, nullable=False),  # messages granted in that second
)
