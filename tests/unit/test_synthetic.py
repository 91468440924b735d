"""The synthetic SaaS user base: deterministic, well-shaped, plausibly distributed, streaming."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from itertools import islice
from typing import Any

import pytest

from drumbeat.demo.synthetic import (
    DAY,
    RULES_DIR,
    iter_events,
    iter_future_events,
    iter_users,
    timed_future_events,
)
from drumbeat.model.attributes import parse_timestamp
from drumbeat.model.documents import load_yaml

NOW = 1_772_409_600.0  # 2026-03-02T00:00:00Z
STANDARD = {"email", "timezone", "created_at", "last_seen_at", "unsubscribed"}
CUSTOM = {"plan", "country", "seats", "sessions", "company_size", "beta", "trial_ends_at"}
TIMESTAMPS = ("created_at", "last_seen_at", "trial_ends_at")


def ts(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text).timestamp()


def dump(items: Any) -> bytes:
    return json.dumps(list(items), sort_keys=False).encode()


@pytest.fixture(scope="module")
def users() -> list[dict[str, Any]]:
    return list(iter_users(10_000, seed=11, now=NOW))


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(iter_events(3_000, seed=11, now=NOW))


@pytest.fixture(scope="module")
def future() -> list[dict[str, Any]]:
    return list(iter_future_events(10_000, seed=11, start=NOW, days=60))


# --- determinism ------------------------------------------------------------------------


def test_same_inputs_give_the_same_bytes() -> None:
    assert dump(iter_users(500, seed=3, now=NOW)) == dump(iter_users(500, seed=3, now=NOW))
    assert dump(iter_events(300, seed=3, now=NOW)) == dump(iter_events(300, seed=3, now=NOW))
    first = dump(iter_future_events(300, seed=3, start=NOW, days=30))
    assert first == dump(iter_future_events(300, seed=3, start=NOW, days=30))


def test_different_seeds_give_different_data() -> None:
    assert dump(iter_users(200, seed=1, now=NOW)) != dump(iter_users(200, seed=2, now=NOW))
    assert dump(iter_events(200, seed=1, now=NOW)) != dump(iter_events(200, seed=2, now=NOW))
    one = dump(iter_future_events(200, seed=1, start=NOW, days=30))
    assert one != dump(iter_future_events(200, seed=2, start=NOW, days=30))


def test_a_prefix_of_users_does_not_depend_on_count() -> None:
    assert list(iter_users(50, seed=5, now=NOW)) == list(
        islice(iter_users(900, seed=5, now=NOW), 50)
    )


def test_events_describe_the_users_of_the_same_seed(users: list[dict[str, Any]]) -> None:
    """iter_events replays iter_users' stream: its users are iter_users' users."""
    by_id = {u["user_id"]: u["traits"] for u in users[:3_000]}
    for event in iter_events(3_000, seed=11, now=NOW):
        traits = by_id[event["user_id"]]
        if event["event"] == "signed_up" and "created_at" in traits:
            assert event["timestamp"] == traits["created_at"]


# --- shapes -----------------------------------------------------------------------------


def test_user_shape(users: list[dict[str, Any]]) -> None:
    assert [u["user_id"] for u in users[:2]] == ["u0000001", "u0000002"]
    assert len({u["user_id"] for u in users}) == len(users)
    emails = [u["traits"]["email"] for u in users]
    assert len(set(emails)) == len(emails)
    for user in users:
        assert set(user) == {"user_id", "traits"}
        traits = user["traits"]
        assert set(traits) <= STANDARD | CUSTOM
        assert {"email", "created_at", "unsubscribed", "plan"} <= set(traits)
        for name in TIMESTAMPS:
            if name in traits:
                ts(traits[name])
        created = ts(traits["created_at"])
        assert NOW - 120 * DAY <= created < NOW
        if "last_seen_at" in traits:
            assert created < ts(traits["last_seen_at"]) <= NOW
        assert ("trial_ends_at" in traits) == (traits["plan"] == "trial")
        if "seats" in traits:
            assert type(traits["seats"]) is int and 1 <= traits["seats"] <= 50
        if "sessions" in traits:
            assert type(traits["sessions"]) is int and 0 <= traits["sessions"] <= 200
        assert traits.get("company_size", "1-10") in {"1-10", "11-50", "51-200", "201+"}
        assert type(traits["unsubscribed"]) is bool
        assert type(traits.get("beta", False)) is bool


def test_timezones_are_iana_zones(users: list[dict[str, Any]]) -> None:
    from zoneinfo import available_timezones

    zones = Counter(u["traits"]["timezone"] for u in users if "timezone" in u["traits"])
    assert set(zones) <= available_timezones()
    assert {"America/New_York", "Europe/Paris", "Asia/Tokyo", "UTC"} <= set(zones)


def test_event_shape(events: list[dict[str, Any]]) -> None:
    names = {"signed_up", "logged_in", "viewed_pricing", "created_project"}
    names |= {"invited_teammate", "upgraded", "viewed_page"}
    for event in events:
        assert set(event) == {"user_id", "event", "timestamp", "properties", "message_id"}
        assert event["event"] in names
        assert NOW - 60 * DAY <= ts(event["timestamp"]) <= NOW
        if event["event"] == "upgraded":
            assert event["properties"]["plan"] == "paid"
            assert isinstance(event["properties"]["amount"], float)
        if event["event"] == "viewed_page":
            assert event["properties"]["path"].startswith("/")
    ids = [e["message_id"] for e in events]
    assert len(set(ids)) == len(ids)


# --- distributions ----------------------------------------------------------------------


def test_plan_shares(users: list[dict[str, Any]]) -> None:
    plans = Counter(u["traits"]["plan"] for u in users)
    assert set(plans) == {"free", "trial", "paid"}
    for plan, share in {"free": 0.70, "trial": 0.15, "paid": 0.15}.items():
        assert plans[plan] / len(users) == pytest.approx(share, abs=0.02)


def test_other_shares(users: list[dict[str, Any]]) -> None:
    n = len(users)
    unsubscribed = sum(u["traits"]["unsubscribed"] for u in users)
    assert 0.01 < unsubscribed / n < 0.03
    beta = sum(u["traits"].get("beta", False) for u in users)
    assert 0.07 < beta / n < 0.13
    complete = STANDARD | CUSTOM - {"trial_ends_at"}
    lacking = sum(not complete <= set(u["traits"]) for u in users)
    assert 0.03 < lacking / n < 0.07  # ~5% of users lack a trait or two
    countries = Counter(u["traits"].get("country") for u in users)
    assert countries.most_common(1)[0][0] == "US"
    assert {"US", "GB", "DE", "FR", "IN", "JP", "BR"} <= set(countries)
    seats = sorted(u["traits"]["seats"] for u in users if "seats" in u["traits"])
    assert seats[len(seats) // 2] <= 10  # skewed small


def test_events_per_user(events: list[dict[str, Any]]) -> None:
    per_user = Counter(e["user_id"] for e in events)
    assert 4.5 < len(events) / 3_000 < 8
    counts = [per_user.get(f"u{i:07d}", 0) for i in range(1, 3_001)]
    assert sum(c <= 2 for c in counts) > 0.4 * 3_000  # many users have 0–2 events
    assert max(counts) >= 24  # a few have dozens
    signups = Counter(e["user_id"] for e in events if e["event"] == "signed_up")
    assert max(signups.values()) == 1


def test_events_reference_only_generated_users(
    users: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    generated = {u["user_id"] for u in users[:3_000]}
    assert {e["user_id"] for e in events} <= generated


def test_paid_users_mostly_upgraded(
    users: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    plans = {u["user_id"]: u["traits"]["plan"] for u in users[:3_000]}
    upgraded = {e["user_id"] for e in events if e["event"] == "upgraded"}
    paid = {uid for uid, plan in plans.items() if plan == "paid"}
    assert upgraded <= paid
    assert len(upgraded) > 0.6 * len(paid)


def test_each_users_events_are_in_time_order(events: list[dict[str, Any]]) -> None:
    last: dict[str, float] = {}
    for event in events:
        t = ts(event["timestamp"])
        assert t >= last.get(event["user_id"], 0.0)
        last[event["user_id"]] = t


# --- future events ----------------------------------------------------------------------


def test_future_events_are_sorted_and_in_the_window(future: list[dict[str, Any]]) -> None:
    times = [ts(e["timestamp"]) for e in future]
    assert times == sorted(times)
    assert times[0] >= NOW and times[-1] < NOW + 60 * DAY
    assert 0.07 < len(future) / 10_000 / 60 < 0.13  # about 0.1 event a user a day
    ids = [e["message_id"] for e in future]
    assert len(set(ids)) == len(ids)


def test_future_events_reference_generated_users(
    users: list[dict[str, Any]], future: list[dict[str, Any]]
) -> None:
    generated = {u["user_id"] for u in users}
    assert {e["user_id"] for e in future} <= generated


def test_future_upgrades_change_the_plan_of_free_and_trial_users(
    users: list[dict[str, Any]], future: list[dict[str, Any]]
) -> None:
    plans = {u["user_id"]: u["traits"]["plan"] for u in users}
    upgrades = [e for e in future if e["event"] == "upgraded"]
    upgraders = [e["user_id"] for e in upgrades]
    assert len(set(upgraders)) == len(upgraders)  # once each
    assert all(plans[uid] in {"free", "trial"} for uid in upgraders)
    assert all(e["traits"] == {"plan": "paid"} for e in upgrades)
    eligible = sum(plan != "paid" for plan in plans.values())
    assert len(upgrades) / eligible == pytest.approx(0.03, abs=0.005)


def test_future_traits_only_where_they_change(future: list[dict[str, Any]]) -> None:
    for event in future:
        if event["event"] == "logged_in":
            assert event["traits"] == {"last_seen_at": event["timestamp"]}
        elif event["event"] != "upgraded":
            assert "traits" not in event


def test_future_windows_do_not_share_message_ids() -> None:
    first = {e["message_id"] for e in iter_future_events(100, seed=1, start=NOW, days=5)}
    later = NOW + 5 * DAY
    second = {e["message_id"] for e in iter_future_events(100, seed=1, start=later, days=5)}
    assert not first & second


def test_nothing_for_no_users_or_no_days() -> None:
    assert list(iter_users(0, seed=1, now=NOW)) == []
    assert list(iter_events(0, seed=1, now=NOW)) == []
    assert list(iter_future_events(0, seed=1, start=NOW, days=60)) == []
    assert list(iter_future_events(100, seed=1, start=NOW, days=0)) == []


# --- streaming --------------------------------------------------------------------------


def test_generators_stream() -> None:
    began = time.perf_counter()
    assert next(iter_users(10**9, seed=1, now=NOW))["user_id"] == "u0000001"
    assert next(iter_events(10**9, seed=1, now=NOW))["user_id"].startswith("u")
    assert next(iter_future_events(10**9, seed=1, start=NOW, days=60))["user_id"].startswith("u")
    assert time.perf_counter() - began < 1.0


# --- example rules ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["free-engaged.yaml", "lapsed-paid.yaml", "three-conditions.yaml"])
def test_example_rules_are_rules(name: str) -> None:
    document = load_yaml((RULES_DIR / name).read_text(encoding="utf-8"))
    assert set(document) == {"all"}
    assert all(isinstance(condition, dict) for condition in document["all"])


def test_three_conditions_are_attribute_only() -> None:
    document = load_yaml((RULES_DIR / "three-conditions.yaml").read_text(encoding="utf-8"))
    assert document == {
        "all": [
            {"attr": "plan", "eq": "free"},
            {"attr": "seats", "gte": 3},
            {"attr": "country", "in": ["US", "GB", "DE"]},
        ]
    }


def test_timed_future_events_carry_the_epoch_of_their_timestamp():
    timed = list(timed_future_events(300, seed=3, start=NOW, days=10))
    assert timed and all(at == parse_timestamp(event["timestamp"]) for at, event in timed)
    assert [event for _, event in timed] == list(
        iter_future_events(300, seed=3, start=NOW, days=10)
    )
