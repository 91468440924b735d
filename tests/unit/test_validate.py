"""Validation of identify and track calls: types fixed by first sight, errors that say where."""

from __future__ import annotations

import pytest

from drumbeat.errors import InvalidInput
from drumbeat.ingest.validate import Validator
from drumbeat.model.attributes import AttrType, format_timestamp, parse_timestamp


def test_first_seen_values_fix_types():
    validator = Validator({}, now=0)
    record = validator.user(
        {
            "user_id": "u1",
            "traits": {
                "plan": "free",
                "seats": 3,
                "beta": False,
                "trial_ends_at": "2026-02-01T00:00:00Z",
            },
        }
    )
    assert validator.new_types == {
        "plan": AttrType.STRING,
        "seats": AttrType.NUMBER,
        "beta": AttrType.BOOLEAN,
        "trial_ends_at": AttrType.TIMESTAMP,
    }
    assert record.attributes["trial_ends_at"] == parse_timestamp("2026-02-01T00:00:00Z")


@pytest.mark.parametrize(
    ("traits", "where", "message"),
    [
        ({"seats": "3"}, "traits.seats", "expected number, got string"),
        ({"seats": True}, "traits.seats", "expected number, got boolean"),
        ({"tags": ["a"]}, "traits.tags", "got list"),
        ({"created_at": "2026-01-02"}, "traits.created_at", "expected timestamp"),
        ({"created_at": "2026-01-02T03:04:05"}, "traits.created_at", "expected timestamp"),
        ({"timezone": "Europe/Pariss"}, "traits.timezone", "IANA time zone"),
        ({"email": "nobody"}, "traits.email", "an email address"),
        ({"unsubscribed": "yes"}, "traits.unsubscribed", "expected boolean"),
    ],
)
def test_values_that_do_not_fit_are_refused_with_where_and_why(traits, where, message):
    validator = Validator({"seats": AttrType.NUMBER}, now=0)
    with pytest.raises(InvalidInput) as caught:
        validator.user({"user_id": "u9", "traits": traits}, "line 4: ")
    problem = caught.value.problems[0]
    assert problem.where == f"line 4: {where}"
    assert message in problem.message and "'u9'" in problem.message
    assert validator.new_types == {}


def test_timestamps_take_offsets_and_epoch_seconds():
    assert parse_timestamp("2026-01-02T04:04:05+01:00") == parse_timestamp("2026-01-02T03:04:05Z")
    assert parse_timestamp(1767323045) == 1767323045.0
    assert format_timestamp(1767323045.5) == "2026-01-02T03:04:05.500000Z"


def test_null_traits_unset_attributes():
    record = Validator({}, now=0).user({"user_id": "u1", "traits": {"plan": None}})
    assert record.attributes == {"plan": None}


def test_events_default_their_time_to_now_and_accept_camel_case():
    record = Validator({}, now=123.0).event({"userId": "u1", "event": "login", "messageId": "m"})
    assert (record.user_id, record.ts, record.message_id) == ("u1", 123.0, "m")


def test_every_problem_of_a_call_is_listed():
    with pytest.raises(InvalidInput) as caught:
        Validator({}, now=0).event({"event": "", "properties": [1]})
    assert [p.where for p in caught.value.problems] == ["user_id", "event", "properties"]
