"""The API's settings, refused by `drumbeat serve` before it opens the store when they cannot
work: one line naming the setting, exit 2."""

from __future__ import annotations

import pytest

from tests.e2e.test_cli_refusals import assert_refused, run


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        (
            "DRUMBEAT_CORS_ORIGINS",
            "https://app.example.com/inbox",
            ("DRUMBEAT_CORS_ORIGINS", "no path"),
        ),
        ("DRUMBEAT_CORS_ORIGINS", "app.example.com", ("'app.example.com'", "scheme://host")),
        ("DRUMBEAT_API_RATE_LIMIT", "0", ("DRUMBEAT_API_RATE_LIMIT", "greater than 0")),
        ("DRUMBEAT_API_RATE_LIMIT", "lots", ("DRUMBEAT_API_RATE_LIMIT", "'lots'")),
    ],
)
def test_serve_refuses_api_settings_that_cannot_work(tmp_path, variable, value, words):
    done = run(tmp_path, "serve", "--port", "1", **{variable: value})
    assert_refused(done, tmp_path, *words)


def test_origins_may_be_a_list_or_any():
    from drumbeat.config import settings

    both = "https://app.example.com, http://localhost:3000"
    assert settings(cors_origins=None).cors_origins == []
    assert settings(cors_origins=both.split(", ")).cors_origins == both.split(", ")
    assert settings(cors_origins=["*"]).cors_origins == ["*"]
