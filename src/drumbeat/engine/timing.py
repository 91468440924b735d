"""When a send may go out: the send window in the user's time zone, and the frequency cap."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drumbeat.model.campaign import DAYS, SendWindow

UTC_ZONE = ZoneInfo("UTC")


@cache
def zone(name: str | None) -> ZoneInfo:
    """The user's zone; UTC when unknown (stored zones are validated, so this is rare)."""
    if not name:
        return UTC_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True, slots=True)
class Window:
    """Days of the week (0 = Monday) and [start, end) minutes of the day, in local time."""

    days: frozenset[int]
    start: int
    end: int

    @classmethod
    def of(cls, spec: SendWindow) -> Window:
        return cls(
            frozenset(DAYS.index(day) for day in spec.days), _minutes(spec.from_), _minutes(spec.to)
        )

    def opens_at(self, now: float, zone_name: str | None) -> float | None:
        """None when the window is open at `now`; else when it next opens (epoch seconds).

        Opening times are built as local wall-clock times of their own date, so a DST change
        between now and then moves them with the user's clock, as it should."""
        tz = zone(zone_name)
        local = datetime.fromtimestamp(now, tz)
        minute = local.hour * 60 + local.minute
        if local.weekday() in self.days and self.start <= minute < self.end:
            return None
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            if day.weekday() not in self.days:
                continue
            opening = datetime(
                day.year, day.month, day.day, self.start // 60, self.start % 60, tzinfo=tz
            ).timestamp()
            if opening > now:
                return opening
        raise AssertionError("a window with at least one day opens within a week")


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most `limit` messages per user per `per` seconds, across all campaigns."""

    limit: int
    per: float

    def free_at(self, sends: Iterable[float], now: float) -> float | None:
        """None when a message may go now; else when the next slot frees up."""
        recent = sorted(t for t in sends if t > now - self.per)
        if len(recent) < self.limit:
            return None
        return recent[-self.limit] + self.per
