"""The two settings a quick read-only command needs (the store's URL and the workspace),
read from the environment as config.Settings reads them, but without pydantic (a fifth of a
second to import and build): `drumbeat clock` and `drumbeat stats` read nothing else."""

from __future__ import annotations

import os

PREFIX = "DRUMBEAT_"
DATABASE_URL = "sqlite:///./drumbeat.db"
WORKSPACE = "default"


def from_env(name: str, default: str) -> str:
    """DRUMBEAT_<NAME>, its case ignored as pydantic-settings ignores it, else `default`."""
    wanted = f"{PREFIX}{name}".upper()
    if wanted in os.environ:
        return os.environ[wanted]
    return next((value for key, value in os.environ.items() if key.upper() == wanted), default)
