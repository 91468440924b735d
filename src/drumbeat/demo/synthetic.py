"""A synthetic SaaS user base: users, past events and future events, as import-file dicts.

Every function is a pure function of its arguments: local generators seeded from `seed`,
never the global RNG, never the clock, so the same call gives the same output byte for byte.
All are streaming generators (memory does not grow with `count`). Timestamps are whole
seconds, ISO-8601 in UTC with a `Z`.

A user's plan and activity level come from a hash of (seed, index), not from the sequential
stream, so the future-event generator can look any user up without replaying the others.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from random import Random
from typing import Any

RULES_DIR = Path(__file__).with_name("rules")
"""Example audience rules: free-engaged.yaml, lapsed-paid.yaml, three-conditions.yaml."""

DAY = 86_400
USER_SPAN_DAYS = 120  # users were created over this many days before `now`
TRIAL_DAYS = 14

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_HM = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SS = tuple(f"{s:02d}Z" for s in range(60))


def _names(spec: str, size: int = 1000) -> tuple[str, ...]:
    """'a 3, b 1' → a lookup table of `size` slots, three quarters "a", one quarter "b"."""
    rows = [entry.split() for entry in spec.split(",")]
    total = sum(float(weight) for _, weight in rows)
    out: list[str] = []
    acc = 0.0
    for name, weight in rows:
        acc += float(weight)
        out.extend([name] * (round(acc / total * size) - len(out)))
    return tuple(out)


# country:time zone; ~5% of users never set a zone and show UTC.
_GEO = tuple(
    tuple(entry.split(":"))
    for entry in _names(
        "US:America/New_York 17, US:America/Chicago 6, US:America/Los_Angeles 10,"
        " GB:Europe/London 10, DE:Europe/Berlin 8, FR:Europe/Paris 6, IN:Asia/Kolkata 9,"
        " JP:Asia/Tokyo 5, BR:America/Sao_Paulo 5, CA:America/Toronto 4, AU:Australia/Sydney 4,"
        " ES:Europe/Madrid 3, NL:Europe/Amsterdam 3, SG:Asia/Singapore 2,"
        " MX:America/Mexico_City 2, US:UTC 2, GB:UTC 1, IN:UTC 1, DE:UTC 1"
    )
)
_COMPANY = _names("1-10 55, 11-50 25, 51-200 12, 201+ 8")
_ACTIVITY = _names(
    "logged_in 40, viewed_page 32, viewed_pricing 12, created_project 11, invited_teammate 5"
)
_PAGES = _names(
    "/dashboard 30, /projects 20, /settings 10, /reports 12, /integrations 8,"
    " /docs/getting-started 12, /billing 8"
)
# Event name → (property, its values by weight).
_PROPERTIES = {
    "viewed_page": ("path", _PAGES),
    "logged_in": ("method", _names("password 55, google 35, sso 10")),
    "created_project": ("template", _names("blank 50, kanban 30, roadmap 20")),
    "invited_teammate": ("role", _names("member 80, admin 20")),
    "viewed_pricing": ("path", ("/pricing",)),
}
_AMOUNTS = tuple(float(amount) for amount in _names("29 45, 49 30, 99 17, 299 8"))
# Traits a user may lack (~5% of users lack one or two of them).
_OPTIONAL = ("timezone", "last_seen_at", "country", "seats", "sessions", "company_size", "beta")

# Activity levels: 0 dormant (30%), 1 normal (60%), 2 heavy (10%); relative event rates.
_LEVEL_WEIGHT = (0.1, 1.0, 8.0)
_MAX_WEIGHT = 8.0
_PAST_RATE = 0.1  # events per day at weight 1, before `now` (averages ~6 events a user)
_FUTURE_RATE = 0.07  # events per day at weight 1, after `start` (~0.1 per user per day)
_RECENCY_DAYS = (40.0, 5.0, 0.5)  # mean time since last seen, per level
_SESSIONS_EXP = (6.0, 3.0, 1.5)
_UPGRADES_PER_60D = 0.03  # share of free and trial users who upgrade over 60 days
_NOT_PAID_SHARE = 0.85
# Thresholds on 16 bits of a user's hash: plan free 70% / trial 15% / paid 15%;
# level dormant 30% / normal 60% / heavy 10%.
_FREE_BELOW, _TRIAL_BELOW, _DORMANT_BELOW, _NORMAL_BELOW = 45875, 55706, 19661, 58982


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit integer."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _profile(salt: int, index: int) -> tuple[str, int]:
    """(plan, activity level) of user `index`, from a hash of (seed, index)."""
    h = _mix((salt + index * _GOLDEN) & _M64)
    p, q = h & 0xFFFF, (h >> 16) & 0xFFFF
    plan = "free" if p < _FREE_BELOW else "trial" if p < _TRIAL_BELOW else "paid"
    return plan, 0 if q < _DORMANT_BELOW else 1 if q < _NORMAL_BELOW else 2


def _user_id(index: int) -> str:
    return f"u{index:07d}"


def _iso_formatter() -> Callable[[int], str]:
    """Epoch seconds to ISO-8601 UTC with Z, caching one date prefix per day seen."""
    days: dict[int, str] = {}

    def iso(t: int) -> str:
        d, s = divmod(t, DAY)
        prefix = days.get(d)
        if prefix is None:
            prefix = days[d] = datetime.fromtimestamp(d * DAY, UTC).strftime("%Y-%m-%dT")
        return prefix + _HM[s // 60] + _SS[s % 60]

    return iso


_UserRow = tuple[dict[str, Any], int, int, str, int]


def _users(count: int, seed: int, now: float) -> Iterator[_UserRow]:
    """(user dict, created_at, last_seen_at, plan, level) for users 1..count."""
    rnd = Random(seed).random
    log = math.log
    salt = _mix(seed & _M64)
    iso = _iso_formatter()
    now_i = math.floor(now)
    span, trial_span = USER_SPAN_DAYS * DAY - 60, (TRIAL_DAYS - 1) * DAY
    geo, company, optional = _GEO, _COMPANY, _OPTIONAL
    n_geo, n_company, n_optional = len(geo), len(company), len(optional)
    recency = tuple(d * DAY for d in _RECENCY_DAYS)
    for i in range(1, count + 1):
        plan, level = _profile(salt, i)
        uid = f"u{i:07d}"
        created = now_i - 60 - int(rnd() * (trial_span if plan == "trial" else span))
        last_seen = max(created + 60, now_i - int(-recency[level] * log(1.0 - rnd())))
        country, tz = geo[int(rnd() * n_geo)]
        traits: dict[str, Any] = {
            "email": uid + "@example.com",
            "timezone": tz,
            "created_at": iso(created),
            "last_seen_at": iso(last_seen),
            "unsubscribed": rnd() < 0.02,
            "plan": plan,
            "country": country,
            "seats": 1 + int(50.0 * rnd() ** 4),
            "sessions": int(201.0 * rnd() ** _SESSIONS_EXP[level]),
            "company_size": company[int(rnd() * n_company)],
            "beta": rnd() < 0.1,
        }
        if plan == "trial":
            traits["trial_ends_at"] = iso(created + TRIAL_DAYS * DAY)
        r = rnd()
        if r < 0.05:  # missing attributes: drop one trait, or two for 2 users in 5
            del traits[optional[int(r * 20.0 * n_optional)]]
            if r < 0.02:
                traits.pop(optional[int(rnd() * n_optional)], None)
        yield {"user_id": uid, "traits": traits}, created, last_seen, plan, level


def iter_users(count: int, *, seed: int, now: float) -> Iterator[dict[str, Any]]:
    """`count` users shaped like Segment identify calls: `{"user_id", "traits"}`.

    Standard traits email, timezone, created_at (over the 120 days before `now`),
    last_seen_at, unsubscribed; custom traits plan, country, seats, sessions, company_size,
    beta, and trial_ends_at for trial users. About 5% of users lack one or two traits.
    """
    for row in _users(count, seed, now):
        yield row[0]


def _properties(name: str, rnd: Callable[[], float]) -> dict[str, Any]:
    key, values = _PROPERTIES[name]
    return {key: values[int(rnd() * len(values))]}


def _upgrade_properties(rnd: Callable[[], float]) -> dict[str, Any]:
    return {"plan": "paid", "amount": _AMOUNTS[int(rnd() * len(_AMOUNTS))]}


def iter_events(count: int, *, seed: int, now: float, days: int = 60) -> Iterator[dict[str, Any]]:
    """Past track calls of the users of `iter_users(count, seed=seed, now=now)`.

    Over the `days` days before `now`, about 6 a user on average (many users 0-2, a few
    dozens), each user's in time order, users in id order. `signed_up` at created_at when in
    the window; a `logged_in` at last_seen_at; most paid users have an `upgraded`.
    """
    rnd = Random(_mix(seed & _M64) ^ 0x0E0E_0E0E).random
    log = math.log
    iso = _iso_formatter()
    window_start = math.floor(now) - days * DAY
    rate = tuple(w * _PAST_RATE / DAY for w in _LEVEL_WEIGHT)
    activity, n_activity = _ACTIVITY, len(_ACTIVITY)
    first = itemgetter(0)
    for user, created, last_seen, plan, level in _users(count, seed, now):
        uid = user["user_id"]
        facts: list[tuple[int, str, dict[str, Any]]] = []
        if created >= window_start:
            facts.append((created, "signed_up", {}))
        lo = max(created, window_start)
        width = last_seen - lo
        if width >= 0:
            n = int(-rate[level] * width * log(1.0 - rnd()) + 0.5)
            if n:
                facts.append((last_seen, "logged_in", _properties("logged_in", rnd)))
            for _ in range(n - 1):
                name = activity[int(rnd() * n_activity)]
                facts.append((lo + int(rnd() * width), name, _properties(name, rnd)))
            if plan == "paid" and rnd() < 0.9:
                facts.append((lo + int(rnd() * width), "upgraded", _upgrade_properties(rnd)))
        facts.sort(key=first)
        for k, (t, name, props) in enumerate(facts):
            yield {
                "user_id": uid,
                "event": name,
                "timestamp": iso(t),
                "properties": props,
                "message_id": f"h{seed}-{uid}-{k}",
            }


_Future = tuple[int, str, str, dict[str, Any], dict[str, Any] | None]


def _future_activity(count: int, salt: int, start: int, end: int) -> Iterator[_Future]:
    """Logins, page and pricing views…: a Poisson stream over users weighted by level."""
    if count <= 0 or end <= start:
        return
    rnd = Random(salt ^ 0x0A0A_0A0A).random
    log = math.log
    iso = _iso_formatter()
    candidates_per_second = count * _MAX_WEIGHT * _FUTURE_RATE / DAY
    activity, n_activity = _ACTIVITY, len(_ACTIVITY)
    t = float(start)
    while True:
        t -= log(1.0 - rnd()) / candidates_per_second
        if t >= end:
            return
        index = 1 + int(rnd() * count)
        _, level = _profile(salt, index)
        if rnd() * _MAX_WEIGHT >= _LEVEL_WEIGHT[level]:
            continue  # thinning: heavy users are picked 80 times as often as dormant ones
        ts = int(t)
        name = activity[int(rnd() * n_activity)]
        traits = {"last_seen_at": iso(ts)} if name == "logged_in" else None
        yield ts, _user_id(index), name, _properties(name, rnd), traits


def _future_upgrades(count: int, salt: int, start: int, end: int) -> Iterator[_Future]:
    """Distinct free or trial users who upgrade, in time order (sorted uniforms, streamed)."""
    if count <= 0 or end <= start:
        return
    rng = Random(salt ^ 0x0B0B_0B0B)
    rnd = rng.random
    total = round(count * _NOT_PAID_SHARE * _UPGRADES_PER_60D * (end - start) / (60 * DAY))
    # Users are visited in the order of an affine permutation of 0..count-1.
    step = rng.randrange(count) | 1
    while math.gcd(step, count) != 1:
        step += 2
    offset = rng.randrange(count)
    j = 0
    u = 0.0
    for remaining in range(total, 0, -1):
        u = 1.0 - (1.0 - u) * (1.0 - rnd()) ** (1.0 / remaining)  # next of `total` sorted
        while j < count:
            index = 1 + (step * j + offset) % count
            j += 1
            if _profile(salt, index)[0] != "paid":
                break
        else:
            return
        ts = min(start + int(u * (end - start)), end - 1)
        yield ts, _user_id(index), "upgraded", _upgrade_properties(rnd), {"plan": "paid"}


def iter_future_events(
    count: int, *, seed: int, start: float, days: int
) -> Iterator[dict[str, Any]]:
    """Track calls of the same users over the `days` days after `start`, in time order
    (`timed_future_events` without the times)."""
    return (event for _, event in timed_future_events(count, seed=seed, start=start, days=days))


def timed_future_events(
    count: int, *, seed: int, start: float, days: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Track calls of the same users over the `days` days after `start`, in time order, each
    with its time in epoch seconds (a replay need not parse the timestamps back).

    For users as `iter_users(count, seed=seed, now=start)` made them: logins, page and
    pricing views, projects, invitations, and `upgraded` for ~3% of free and trial users per
    60 days. An event that also changes the user's traits carries them in `traits`
    (`upgraded`: `{"plan": "paid"}`; `logged_in`: `{"last_seen_at": <its timestamp>}`).
    """
    salt = _mix(seed & _M64)
    begin, end = math.floor(start), math.floor(start) + days * DAY
    iso = _iso_formatter()
    streams = heapq.merge(
        _future_activity(count, salt, begin, end),
        _future_upgrades(count, salt, begin, end),
        key=itemgetter(0),
    )
    for n, (ts, uid, name, props, traits) in enumerate(streams):
        event: dict[str, Any] = {
            "user_id": uid,
            "event": name,
            "timestamp": iso(ts),
            "properties": props,
            "message_id": f"f{seed}-{begin}-{n}",
        }
        if traits is not None:
            event["traits"] = traits
        yield ts, event
