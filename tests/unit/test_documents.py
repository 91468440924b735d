"""Campaign and rule files are read with YAML 1.2's scalars: `on`, `NO`, `yes`, `off` are
strings, as their authors meant, not YAML 1.1's booleans."""

from __future__ import annotations

from pathlib import Path

import pytest

from drumbeat.campaigns import read_campaign
from drumbeat.model.documents import load_document
from drumbeat.model.rules import AttrCondition, parse_rule

CAMPAIGN = """\
key: on-signup
name: On sign-up
audience: {attr: country, in: [NO, SE]}
entry: {on: {event: signed_up}}
send_window: {from: 09:00, to: 18:00}
steps:
  - send: {id: hello, channel: email, subject: Hello, body: Hi}
"""


def test_on_is_a_key_and_norway_a_country_in_a_campaign_file(tmp_path: Path) -> None:
    path = tmp_path / "on-signup.yaml"
    path.write_text(CAMPAIGN)
    campaign = read_campaign(path)
    assert campaign.entry.on.event == "signed_up"  # type: ignore[union-attr]
    audience = campaign.audience
    assert isinstance(audience, AttrCondition) and audience.value == ("NO", "SE")
    assert campaign.send_window is not None
    assert (campaign.send_window.from_, campaign.send_window.to) == ("09:00", "18:00")


def test_only_true_and_false_are_booleans_in_a_rule_file(tmp_path: Path) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text("attr: answer\nin: [yes, no, on, off, y, n, Yes, NO, true, False, TRUE]\n")
    rule = parse_rule(load_document(path))
    assert isinstance(rule, AttrCondition)
    assert rule.value == ("yes", "no", "on", "off", "y", "n", "Yes", "NO", True, False, True)


@pytest.mark.parametrize(
    ("text", "value"),
    [("010", 10), ("0o17", 15), ("0x1F", 31), ("-3", -3), ("1.5", 1.5), ("1e3", 1000.0),
     ("1_000", "1_000"), ("1:30", "1:30"), ("~", None), ("null", None)],
)  # fmt: skip
def test_numbers_and_nulls_follow_yaml_1_2(tmp_path: Path, text: str, value: object) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(f"value: {text}\n")
    assert load_document(path) == {"value": value}
