"""Settings, read from DRUMBEAT_* environment variables; each is also a CLI option.

`DRUMBEAT_BROKER_URL` chooses the distributed shape (docs/deploy.md). The Redis URL serves
the user cache (`DRUMBEAT_CACHE=redis`) and the shared send rate limits; it is refused when
it would serve neither.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from drumbeat import settings_checks as checks
from drumbeat.env_settings import DATABASE_URL, PREFIX, WORKSPACE

# seconds: the low end of RabbitMQ's advice (5 to 20; below, false alarms): a silently
# dead publishing connection is given up after 10, a third of a round's CONFIRM_TIMEOUT
BROKER_HEARTBEAT = 5


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    database_url: str = Field(
        DATABASE_URL, description="store of record: sqlite:///path or postgresql://…"
    )
    cache: Literal["none", "memory", "redis"] = Field(
        "none",
        description="the user cache the batch path reads users through: none, memory (an "
        "LRU per process, checked against the store's versions) or redis (shared, "
        "invalidated by every write; needs DRUMBEAT_REDIS_URL and the redis extra). Off by "
        "default: BENCHMARKS.md (bench access) measured it not paying for itself",
    )
    redis_url: str | None = Field(
        None,
        description="Redis for the user cache (DRUMBEAT_CACHE=redis) and for counting the "
        "per-channel rate limits of every process (unset: the store counts them)",
    )
    cache_size: int = Field(
        100_000, ge=1, le=10_000_000, description="users the memory cache keeps per process"
    )
    cache_ttl: float = Field(
        300.0, gt=0, description="seconds the Redis cache keeps a user (and an invalidation)"
    )
    broker_url: str | None = Field(
        None,
        description="RabbitMQ (amqp://…) of the distributed shape: batches and sending go to "
        "`drumbeat worker` processes (docs/deploy.md); unset: workers are processes of "
        "`drumbeat run` on this machine",
    )
    broker_republish_after: float = Field(
        60.0,
        gt=0,
        description="seconds a published batch may wait unclaimed before the scheduler "
        "publishes it again (its message was lost, say); a batch is worked once however often "
        "it is published; needs DRUMBEAT_BROKER_URL",
    )
    broker_heartbeat: int = Field(
        BROKER_HEARTBEAT,
        ge=1,
        le=600,
        description="seconds of heartbeat timeout the scheduler's publishing connection asks "
        "RabbitMQ for (the smaller of this and RabbitMQ's own, 60 by default, is used): a "
        "connection that died without a word (a TCP proxy whose RabbitMQ is gone, a hung "
        "broker) is given up once RabbitMQ sent nothing for two of them, a round under way "
        "on it published again on a new one, and RabbitMQ closes its end as soon; needs "
        "DRUMBEAT_BROKER_URL",
    )
    workspace: str = Field(WORKSPACE, description="the workspace (tenant) commands act on")
    batch_size: int = Field(1000, ge=1, le=100_000, description="users per batch and per bulk call")
    import_batch_size: int = Field(
        100_000,
        ge=1,
        le=1_000_000,
        description="lines per batch of `drumbeat import` (large: each batch rewrites the "
        "pages of the users' time indexes it touches; ~80 MB of memory per 100,000 users)",
    )
    import_processes: int = Field(
        2,
        ge=1,
        le=64,
        description="processes that check a users file of 8 MiB or more while the importing "
        "one writes (1: check in the importing process)",
    )
    event_path_users: int = Field(
        100,
        ge=0,
        le=10_000,
        description="an identify or track call naming at most this many users runs the "
        "engine for them at once (entry on an event, goals, wait_until); bigger calls and "
        "imports wait for the next tick (0: every call waits for it)",
    )
    tick_interval: float = Field(10.0, gt=0, description="seconds between ticks of `drumbeat run`")
    full_pass_every: float = Field(
        7 * 86400.0,
        gt=0,
        description="seconds between full audience passes of a campaign (a safety net: "
        "ticks look at changed users and at users time alone moved into the audience)",
    )
    workers: int = Field(
        2,
        ge=1,
        le=64,
        description="worker processes of `drumbeat run` (1: work in the same process)",
    )
    worker_threads: int | None = Field(
        None,
        ge=1,
        le=16,
        description="batches a lane worked in the process itself (`--workers 1`, the slow "
        "lane's one worker) works at once, on threads: while one batch's Python runs, the "
        "other's statements run on the server. Unset: 2 on PostgreSQL, 1 on SQLite (one "
        "writer: its threads only wait on each other)",
    )
    slow_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="worker processes of the slow lane in `drumbeat run` (1: a thread of "
        "the same process); the fast lane has DRUMBEAT_WORKERS, so slow work never delays it",
    )
    lane_slow_above_ms: float = Field(
        5.0,
        gt=0,
        description="a campaign whose batches take more than this many milliseconds per "
        "user (moving average) moves to the slow lane",
    )
    lane_fast_below_ms: float = Field(
        2.0,
        gt=0,
        description="a slow-lane campaign moves back to the fast lane below this many "
        "milliseconds per user; the gap keeps a campaign near one threshold from flapping",
    )
    campaign_batches_in_flight: int = Field(
        200,
        ge=1,
        description="unfinished batches a campaign may have; its other users are planned on "
        "later ticks (200 batches of 1,000 users: a tick's work of one campaign)",
    )
    workspace_batches_in_flight: int = Field(
        500,
        ge=1,
        description="unfinished batches a workspace may have, all its campaigns together, so "
        "one tenant cannot fill the queues",
    )
    ramp_start: int = Field(
        50_000,
        ge=1,
        description="users a newly activated campaign may let in on its first tick; each "
        "next tick lets in DRUMBEAT_RAMP_FACTOR times more, until the caps govern",
    )
    ramp_factor: float = Field(
        2.0, gt=1, description="how much a new campaign's entries per tick grow, tick by tick"
    )
    backoff_p99: float = Field(
        2.0,
        gt=0,
        description="seconds: while the p99 of the batch queries of the last minute is above "
        "this, the caps are halved each tick (down to one batch) until it is below again",
    )
    db_retry_seconds: float = Field(
        60.0,
        ge=0,
        description="seconds a lost database connection is waited for (work is tried again "
        "with backoff meanwhile) before a command gives up",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="signs unsubscribe tokens and webhook bodies (HMAC-SHA256); unset: each "
        "workspace gets a random key, kept in the store (drumbeat.channels.keys)",
    )
    public_url: str = Field(
        "http://localhost:8000", description="base of links in messages (unsubscribe)"
    )

    # the HTTP API (`drumbeat serve`)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins (https://app.example.com) whose pages may call the API from the "
        "browser, e.g. the in-app inbox; * for any; none by default",
    )
    api_key_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description="seconds a serving process keeps a key it looked up (and a workspace's "
        "attribute types, as a Python client does) before reading them again: a revoked key "
        "works for at most this long; 0: read them for every request",
    )
    api_write_group: int = Field(
        32,
        ge=1,
        le=1000,
        description="on SQLite, most requests' tracking calls a serving process writes in one "
        "transaction (each still all or nothing, answered after the commit); 1: each its own",
    )
    api_rate_limit: float | None = Field(
        None,
        gt=0,
        description="requests per second per key (a token bucket in each serving process, so "
        "N times that with --workers N); unset: no limit",
    )

    # observability
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text: log lines as messages; json: one JSON object a line (time, level, "
        "logger, message, and for each batch: batch, campaign, lane, users, seconds, outcome)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "warning", description="the least severe log lines written (info: one line a batch)"
    )
    stats_flush_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="seconds between two writes of a process's timings into the store "
        "(and once at exit), for `drumbeat stats`",
    )
    stats_keep_days: float = Field(
        7.0, gt=0, description="days of timings the store keeps (older minutes are dropped)"
    )

    # email (SMTP); unset host means email goes to the file channel (a dry run)
    smtp_host: str | None = Field(None, description="SMTP server; unset sends email to the file")
    smtp_port: int = Field(587, description="SMTP port")
    smtp_username: str | None = Field(None, description="SMTP login")
    smtp_password: str | None = Field(None, description="SMTP password")
    smtp_starttls: bool = Field(True, description="upgrade the SMTP connection with STARTTLS")
    smtp_timeout: float = Field(30.0, description="seconds before an SMTP call gives up")
    email_from: str = Field("Drumbeat <drumbeat@localhost>", description="From: of every email")

    # delivery (real seconds, whatever the store's clock does)
    send_lease: float = Field(
        300.0,
        gt=0,
        description="seconds a dispatcher holds the outbox rows it claimed; kept while they "
        "are sent, so it only runs out when the dispatcher died or stalled",
    )
    send_attempts: int = Field(
        12, ge=1, le=100, description="tries before a transiently failing message is dead"
    )
    retry_after: float = Field(
        5.0, gt=0, description="seconds before the first retry; each next one waits twice as long"
    )
    retry_max: float = Field(3600.0, gt=0, description="the longest wait between two tries")
    advance_retry_wait: float = Field(
        60.0,
        ge=0,
        description="`drumbeat advance` waits at its end for the retries due within this "
        "many seconds; later ones are sent by the next run",
    )

    # webhook
    webhook_timeout: float = Field(
        10.0, gt=0, description="seconds a webhook call may take in all, from DNS to the reply"
    )
    webhook_concurrency: int = Field(
        16,
        ge=1,
        le=256,
        description="webhook calls in flight at once per dispatcher (a slow endpoint holds "
        "one each, so it delays only its own messages)",
    )
    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="hosts or CIDRs a webhook may reach despite being private or plain http",
    )

    # file channel (dry runs)
    outbox_file: str = Field(
        "./drumbeat-messages.jsonl", description="where the file channel writes"
    )

    # per-channel send rate limits, messages per second (e.g. {"email": 50})
    rate_limits: Annotated[dict[str, Annotated[float, Field(gt=0)]], NoDecode] = Field(
        default_factory=dict, description="per channel msgs/s"
    )

    def threads_in_process(self, dialect: str) -> int:
        """`worker_threads`, or its default for a store of `dialect`."""
        if self.worker_threads is not None:
            return self.worker_threads
        return 2 if dialect == "postgresql" else 1

    # checks beyond type and bounds (settings_checks.py), in the order they run
    _lane_gap = model_validator(mode="after")(checks.lane_gap)
    _redis = field_validator("redis_url")(checks.redis_url)
    _redis_has_work = model_validator(mode="after")(checks.redis_has_work)
    _broker_settings_have_a_broker = model_validator(mode="after")(
        checks.broker_settings_have_a_broker
    )
    _amqp = field_validator("broker_url")(checks.amqp_url)
    _guessable = field_validator("secret_key")(checks.unguessable)
    _json_object = field_validator("rate_limits", mode="before")(checks.json_object)
    _known_channels = field_validator("rate_limits")(checks.known_channels)
    _comma_separated = field_validator("webhook_allow", "cors_origins", mode="before")(
        checks.comma_separated
    )
    _origins = field_validator("cors_origins")(checks.origins)


def settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit values (CLI options) taking precedence.
    A value that does not fit is refused with the setting's name (and its variable's)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise checks.refusal(exc) from None
