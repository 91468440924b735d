"""What a setting's value must be beyond its type and bounds (config.Settings attaches each
check to its fields), and how a refused value is told: with the setting's name and its
variable's, the value shown unless it may hold a secret."""

from __future__ import annotations

import importlib.util
import re
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import SecretStr, ValidationError
from pydantic_core import PydanticCustomError

from drumbeat.errors import InvalidInput, Problem

if TYPE_CHECKING:
    from drumbeat.config import Settings

MIN_SECRET_KEY = 16
ORIGIN = re.compile(r"https?://[^/?#\s:]+(:[0-9]{1,5})?")
PUBLIC_KEYS = frozenset({"change-me"})  # the default of earlier versions, in their docs

REDIS_SCHEMES = ("redis", "rediss", "unix")

# refusals whose input is not shown: a URL (it may hold a password), a key, all settings
UNSHOWN = ("not_built", "url", "secret", "lane_gap")


def lane_gap(settings: Settings) -> Settings:
    if settings.lane_fast_below_ms >= settings.lane_slow_above_ms:
        raise PydanticCustomError(
            "lane_gap",
            "lane_fast_below_ms ({below}) must be below lane_slow_above_ms ({above}): "
            "the gap between them keeps a campaign from flapping between lanes",
            {"below": settings.lane_fast_below_ms, "above": settings.lane_slow_above_ms},
        )
    return settings


def redis_url(value: str | None) -> str | None:
    if value is None:
        return value
    if value.split("://", 1)[0] not in REDIS_SCHEMES:
        raise PydanticCustomError(
            "not_built", "expected redis://host[:port][/db], rediss://… or unix://path"
        )
    if importlib.util.find_spec("redis") is None:
        raise PydanticCustomError(
            "not_built", "needs the redis extra: pip install 'drumbeat[redis]'"
        )
    return value


def redis_has_work(settings: Settings) -> Settings:
    """Redis holds the user cache and the rate limits: without either it would be
    ignored, and the Redis cache has nowhere to go without it."""
    if settings.redis_url is not None and not settings.rate_limits and settings.cache != "redis":
        raise PydanticCustomError(
            "not_built",
            "DRUMBEAT_REDIS_URL is set but neither DRUMBEAT_CACHE=redis nor "
            "DRUMBEAT_RATE_LIMITS uses it: set one, or unset it",
        )
    if settings.cache == "redis" and settings.redis_url is None:
        raise PydanticCustomError(
            "not_built", "DRUMBEAT_CACHE=redis needs DRUMBEAT_REDIS_URL (redis://host:6379/0)"
        )
    return settings


# Settings of the distributed shape's connection to RabbitMQ, and what each is.
_BROKER_ONLY = {
    "broker_heartbeat": "the heartbeat of the scheduler's connection to RabbitMQ",
    "broker_republish_after": "how long a batch published to RabbitMQ may wait unclaimed",
}


def broker_settings_have_a_broker(settings: Settings) -> Settings:
    """The broker's settings act on RabbitMQ only: without a broker they would be ignored."""
    if settings.broker_url is not None:
        return settings
    for field, what in _BROKER_ONLY.items():
        if field in settings.model_fields_set:
            raise PydanticCustomError(
                "not_built",
                f"DRUMBEAT_{field.upper()} is set but DRUMBEAT_BROKER_URL is not: it is "
                f"{what}; set both, or unset it",
            )
    return settings


def amqp_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("amqp://", "amqps://")):
        raise PydanticCustomError(
            "url", "the broker must be RabbitMQ: amqp://user:password@host:5672/vhost"
        )
    return value


def unguessable(value: SecretStr | None) -> SecretStr | None:
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


def json_object(value: object) -> object:
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


def known_channels(value: dict[str, float]) -> dict[str, float]:
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


def comma_separated(value: object) -> object:
    """`DRUMBEAT_WEBHOOK_ALLOW=127.0.0.1,hooks.internal` or a JSON list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def origins(value: list[str]) -> list[str]:
    """An origin is scheme://host[:port], nothing after: what a browser sends."""
    bad = [o for o in value if o != "*" and not ORIGIN.fullmatch(o)]
    if bad:
        raise PydanticCustomError(
            "origin",
            "{bad}: an origin is scheme://host[:port] with no path, e.g. "
            "https://app.example.com, or *",
            {"bad": ", ".join(map(repr, bad))},
        )
    return value


def refusal(exc: ValidationError) -> InvalidInput:
    """Each value refused, named by its setting (and its variable)."""
    problems = [
        Problem(_setting_name(error["loc"]), f"{error['msg']}{_given(error)}")
        for error in exc.errors()
    ]
    return InvalidInput(problems, what="settings")


def _setting_name(location: tuple[int | str, ...]) -> str:
    """`rate_limits (DRUMBEAT_RATE_LIMITS)`, then the key inside it, if any: `.email`."""
    name = str(location[0]) if location else ""
    inner = "".join(f".{part}" for part in location[1:])
    return f"{name} (DRUMBEAT_{name.upper()}){inner}" if name else "settings"


def _given(error: Any) -> str:
    """The value refused, except a URL refused whole (it may hold a password) or a key."""
    return "" if error["type"] in UNSHOWN else f" (given {error['input']!r})"
