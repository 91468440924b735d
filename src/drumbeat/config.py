"""Settings, read from DRUMBEAT_* environment variables; each is also a CLI option.

The Redis URL belongs to a part of the distributed shape not built yet: a set one is refused
rather than ignored (README.md, "The shapes").
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from drumbeat.errors import InvalidInput, Problem


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRUMBEAT_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./drumbeat.db", description="store of record: sqlite:///path or postgresql://…"
    )
    redis_url: str | None = Field(None, description="Redis user cache: not built yet, keep unset")
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
        "it is published",
    )
    workspace: str = Field("default", description="the workspace (tenant) commands act on")
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

    @field_validator("redis_url")
    @classmethod
    def _not_built(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            raise PydanticCustomError("not_built", NOT_BUILT[str(info.field_name)])
        return value

    @field_validator("broker_url")
    @classmethod
    def _amqp(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("amqp://", "amqps://")):
            raise PydanticCustomError(
                "url", "the broker must be RabbitMQ: amqp://user:password@host:5672/vhost"
            )
        return value

    @field_validator("secret_key")
    @classmethod
    def _guessable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        key = value.get_secret_value()
        flaw = f"is shorter than {MIN_SECRET_KEY} characters" if len(key) < MIN_SECRET_KEY else None
        if key in PUBLIC_KEYS:
            flaw = "is the old default, published in the docs"
        if flaw is not None:  # anyone could sign unsubscribe links with it
            raise PydanticCustomError(
                "secret",
                "{flaw}: set a random one (python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))') or unset it (each workspace then gets a "
                "random key, kept in the store)",
                {"flaw": flaw},
            )
        return value

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        """`DRUMBEAT_RATE_LIMITS={"email": 50}`: a JSON object of channel → messages/s."""
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                value = None
            if not isinstance(value, dict):
                raise PydanticCustomError(
                    "json_object",
                    'expected a JSON object of channel: messages/s, e.g. {"email": 50}',
                )
        return value

    @field_validator("rate_limits")
    @classmethod
    def _known_channels(cls, value: dict[str, float]) -> dict[str, float]:
        from drumbeat.channels.registry import available

        known = available()
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise PydanticCustomError(
                "unknown_channel",
                "unknown channel {names}: the channels are {known}",
                {"names": ", ".join(map(repr, unknown)), "known": ", ".join(known)},
            )
        return value

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`DRUMBEAT_WEBHOOK_ALLOW=127.0.0.1,hooks.internal` or a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return orjson.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value


MIN_SECRET_KEY = 16
PUBLIC_KEYS = frozenset({"change-me"})  # the default of earlier versions, in their docs

NOT_BUILT = {
    "redis_url": "the Redis user cache (distributed shape) is not built yet; unset it "
    "(the cache is in-process)",
}


def settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit values (CLI options) taking precedence.
    A value that does not fit is refused with the setting's name (and its variable's)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [
            Problem(_setting_name(error["loc"]), f"{error['msg']}{_given(error)}")
            for error in exc.errors()
        ]
        raise InvalidInput(problems, what="settings") from None


def _setting_name(location: tuple[int | str, ...]) -> str:
    """`rate_limits (DRUMBEAT_RATE_LIMITS)`, then the key inside it, if any: `.email`."""
    name = str(location[0]) if location else ""
    inner = "".join(f".{part}" for part in location[1:])
    return f"{name} (DRUMBEAT_{name.upper()}){inner}" if name else "settings"


def _given(error: Any) -> str:
    """The value refused, except a URL refused whole (it may hold a password) or a key."""
    return "" if error["type"] in ("not_built", "url", "secret") else f" (given {error['input']!r})"
