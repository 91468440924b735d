"""Settings, read from DRUMBEAT_* environment variables; each is also a CLI option.

Unset Redis and broker URLs mean the embedded shape (SQLite, in-process cache and workers).
"""

from __future__ import annotations

from typing import Annotated

import orjson
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from drumbeat.errors import InvalidInput, Problem


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRUMBEAT_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./drumbeat.db", description="store of record: sqlite:///path or postgresql://…"
    )
    redis_url: str | None = Field(None, description="user cache; unset means in-process")
    broker_url: str | None = Field(None, description="Celery broker; unset means in-process")
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
    secret_key: str = Field(
        "change-me", description="signs unsubscribe tokens and webhook bodies (HMAC-SHA256)"
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

    # webhook
    webhook_timeout: float = Field(10.0, description="seconds before a webhook call gives up")
    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="hosts or CIDRs a webhook may reach despite being private or plain http",
    )

    # file channel (dry runs)
    outbox_file: str = Field(
        "./drumbeat-messages.jsonl", description="where the file channel writes"
    )

    # per-channel send rate limits, messages per second (e.g. {"email": 50})
    rate_limits: dict[str, float] = Field(default_factory=dict, description="per channel msgs/s")

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


def settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit values (CLI options) taking precedence.
    A value that does not fit is refused with the setting's name (and its variable's)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [
            Problem(_setting_name(error["loc"]), f"{error['msg']} (given {error['input']!r})")
            for error in exc.errors()
        ]
        raise InvalidInput(problems, what="settings") from None


def _setting_name(location: tuple[int | str, ...]) -> str:
    name = str(location[0]) if location else ""
    return f"{name} (DRUMBEAT_{name.upper()})" if name else "settings"
