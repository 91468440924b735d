"""Channels: how a rendered message leaves Drumbeat.

- `base`: the Channel protocol, Message, Result and Outcome.
- `registry`: channels are classes under the `drumbeat.channels` entry-point group;
  `load_channels(settings, store)` builds them all (`email` is the file channel, a dry run,
  when no SMTP host is set) and `get_channel` names the unknown ones.
- `email` (SMTP), `webhook` (signed JSON POST, SSRF-guarded), `in_app` (the inbox table),
  `file` (JSON lines, for dry runs).
- `tokens`: signed unsubscribe tokens for the links in emails.

See docs/channels.md for settings, the webhook signature and how a package adds a channel.
"""

from __future__ import annotations

from drumbeat.channels.base import Channel, Message, Outcome, Result
from drumbeat.channels.registry import (
    ChannelError,
    UnknownChannel,
    available,
    close_channels,
    get_channel,
    load_channels,
)
from drumbeat.channels.tokens import InvalidToken, unsubscribe_token, verify_unsubscribe_token

__all__ = [
    "Channel",
    "ChannelError",
    "InvalidToken",
    "Message",
    "Outcome",
    "Result",
    "UnknownChannel",
    "available",
    "close_channels",
    "get_channel",
    "load_channels",
    "unsubscribe_token",
    "verify_unsubscribe_token",
]
