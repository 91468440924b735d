"""What a template would do wrong to every message, found without rendering it; and the part
of the webhook guard that needs no DNS."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from drumbeat.channels.render import render
from drumbeat.channels.ssrf import AllowList, Refused
from drumbeat.channels.template_checks import template_problems

FIELDS = {"user": {"user_id", "email", "name"}, "campaign": {"key"}, "unsubscribe_url": None}


def problems(source: str) -> list[str]:
    return [str(p) for p in template_problems(source, "body", FIELDS)]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ ''.__class__ }}", "body: unsafe: the sandbox refuses '__class__'"),
        ("{{ user['__len__'] }}", "body: unsafe: the sandbox refuses '__len__'"),
        ("{{ user|attr('_x') }}", "body: unsafe: the sandbox refuses '_x'"),
        ("{{ user.name.mro() }}", "body: unsafe: the sandbox refuses 'mro'"),
        ("{{ [].append(1) }}", "body: unsafe: append() modifies a value; the sandbox refuses it"),
        (
            "{% include 'footer.html' %}",
            "body: a message template cannot extend, include or import a template",
        ),
        ("{{ user.name | shout }}", "body: line 1: No filter named 'shout'."),
        (
            "{{ usr.name }}",
            "body: unknown variable 'usr' (known: campaign, unsubscribe_url, user);"
            " did you mean 'user'?",
        ),
        (
            "{{ campaign.kye }}",
            "body: unknown campaign field 'kye' in {{ campaign.kye }} (known: key);"
            " did you mean 'key'?",
        ),
        (
            "Hi\n\n{% if user.nmae %}{{ user.nmae }}{% endif %}",
            "body: line 3: unknown attribute 'nmae' in {{ user.nmae }}"
            " (known: email, name, user_id); did you mean 'name'?",
        ),
    ],
)
def test_a_template_that_would_fail_every_message_is_refused(source: str, expected: str):
    assert problems(source) == [expected]


@pytest.mark.parametrize(
    "source",
    [
        "plain text, {not a tag}",
        "{{ user.name }} {{ user['email'] }} {{ campaign.key }} {{ unsubscribe_url }}",
        "{{ user.nickname | default('there') }} {{ nope | d('') }}",
        "{% if user.vip is defined %}{{ user.vip }}{% endif %}",
        "{{ user.get('team', 'solo') }} {% for k, v in user.items() %}{{ k }}{% endfor %}",
        "{% set user = {'zz': 1} %}{{ user.zz }} {{ range(3) | join(',') }}",
        "{{ user.name.upper() }} {{ 'a,b'.split(',') | first }}",
    ],
)
def test_what_a_template_guards_or_may_read_passes(source: str):
    assert problems(source) == []


def test_a_missing_value_renders_empty_and_is_recorded_only_when_written():
    missing: set[str] = set()
    text = render(
        "{{ user.a }}|{{ user.b.c | upper }}|{{ user.d | default('x') }}|"
        "{% if user.e %}e{% endif %}|{{ user.name }}",
        {"user": {"name": "Ada"}},
        missing=missing,
    )
    assert text == "||x||Ada"
    assert missing == {"a", "b"}


def test_the_static_guard_needs_no_dns(monkeypatch):
    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the static check must not resolve")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    strict = AllowList([])
    assert strict.check_static("https://hooks.example.com/x")[1] == "hooks.example.com"
    for url, error in [
        ("file:///etc/passwd", r"must be http\(s\)"),
        ("http://hooks.example.com/", "must use https"),
        ("https://[::ffff:127.0.0.1]/", "is loopback"),
        ("https://169.254.169.254/", "is link-local"),
    ]:
        with pytest.raises(Refused, match=error):
            strict.check_static(url)
    assert AllowList(["127.0.0.1"]).check_static("http://127.0.0.1:8080/")[2] is True
