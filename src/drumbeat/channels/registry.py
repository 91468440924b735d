"""Which channels exist: classes registered under the `drumbeat.channels` entry-point group.

Drumbeat registers its own four (`email`, `webhook`, `in_app`, `file`) in its pyproject;
another installed package adds one the same way:

    [project.entry-points."drumbeat.channels"]
    sms = "acme_sms:SmsChannel"

Every class is built as `Cls(settings, store)`, once per dispatcher, and must not connect
anywhere before its first batch.

Dry run: when `settings.smtp_host` is unset, the name `email` is served by the file channel
(the same instance as `file`), so a demo or a test setup writes its emails to
`settings.outbox_file` instead of failing. This applies only to Drumbeat's own SMTP
channel; a package that registers its own `email` channel gets it as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from drumbeat.channels.base import Channel
from drumbeat.errors import DrumbeatError

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store.base import Store

GROUP = "drumbeat.channels"
SMTP_CHANNEL = "drumbeat.channels.email:EmailChannel"
DRY_RUN_EMAIL = "file"  # the channel that takes `email` when no SMTP host is set


class ChannelError(DrumbeatError):
    """A channel could not be loaded or built."""


class UnknownChannel(DrumbeatError, LookupError):
    """A step asked for a channel that no installed package provides."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"unknown channel {name!r}: the channels are {', '.join(known) or 'none'}"
            f" (a package adds one under the {GROUP!r} entry-point group)"
        )

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0])


def registered() -> dict[str, EntryPoint]:
    """The entry points of the group by name; two packages claiming one name is an error."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        earlier = found.get(point.name)
        if earlier is not None and earlier.value != point.value:
            raise ChannelError(
                f"channel {point.name!r} is registered twice: {earlier.value} and {point.value}"
            )
        found[point.name] = point
    return found


def available() -> list[str]:
    """Names a campaign step may use, without loading anything."""
    return sorted(registered())


def _load(point: EntryPoint) -> type[Any]:
    try:
        cls = point.load()
    except Exception as exc:  # a broken plugin: say which one
        raise ChannelError(
            f"channel {point.name!r} ({point.value}) cannot be loaded: {exc}"
        ) from exc
    if not isinstance(cls, type):
        raise ChannelError(f"channel {point.name!r} ({point.value}) is not a class")
    return cls


def load_channels(settings: Settings, store: Store) -> dict[str, Channel]:
    """Build every registered channel; `email` is the file channel when no SMTP host is set."""
    points = registered()
    dry_run = (
        settings.smtp_host is None
        and "email" in points
        and points["email"].value == SMTP_CHANNEL
        and DRY_RUN_EMAIL in points
    )
    channels: dict[str, Channel] = {}
    for name, point in sorted(points.items()):
        if dry_run and name == "email":
            continue
        try:
            channels[name] = _load(point)(settings, store)
        except Exception as exc:
            close_channels(channels)
            if isinstance(exc, ChannelError):
                raise
            raise ChannelError(f"channel {name!r} ({point.value}) cannot be built: {exc}") from exc
    if dry_run:
        channels["email"] = channels[DRY_RUN_EMAIL]
    return channels


def get_channel(channels: Mapping[str, Channel], name: str) -> Channel:
    """The channel a step names, or UnknownChannel listing the ones there are."""
    try:
        return channels[name]
    except KeyError:
        raise UnknownChannel(name, sorted(channels)) from None


def close_channels(channels: Mapping[str, Channel]) -> None:
    """Close each channel once (a dry-run `email` is the `file` channel itself)."""
    seen: set[int] = set()
    failure: Exception | None = None
    for channel in channels.values():
        if id(channel) in seen:
            continue
        seen.add(id(channel))
        try:
            channel.close()
        except Exception as exc:  # close the others first
            failure = failure or exc
    if failure is not None:
        raise failure
