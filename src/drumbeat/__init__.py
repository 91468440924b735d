"""Drumbeat: a self-hosted campaign engine that stays cheap from a thousand users to millions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drumbeat.client import Drumbeat

__all__ = ["Drumbeat"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import drumbeat.model` does not pull in SQLAlchemy.
    if name == "Drumbeat":
        from drumbeat.client import Drumbeat

        return Drumbeat
    raise AttributeError(name)
