"""Typer checks every option's value through a pydantic TypeAdapter, and builds that adapter
even for a value left unset: pydantic is then a tenth of a second of every command's start.
`settle` gives each parameter a check that passes a value needing none (unset, a string for
a plain `str`, a number inside its bounds, a default that is already its enum's member),
picks a choice as Typer's check does, makes a `Path` of a string, and builds Typer's own
check for any other value, so what is refused, and how, is Typer's."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer.core

_PARAMETER = getattr(typer.core, "_TyperParameter", None)  # Typer with pydantic checks only


class _Settled:
    """Typer's RuntimeParam (`coerce`), the pydantic one built only when a value needs it."""

    def __init__(self, descriptor: Any) -> None:
        self.descriptor = descriptor
        self._full: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if (value is None and not (param.multiple or param.nargs == -1)) or self._final(value):
            return value
        choice = self._choice(value, ctx)
        if choice is not None:
            return choice
        paths = self._paths(value)  # what pydantic makes of them: click has checked them
        if paths is not None:
            return paths
        if self._full is None:
            from typer._coercion import build_runtime_param

            self._full = build_runtime_param(self.descriptor)
        return self._full.coerce(value, param=param, ctx=ctx)

    def _final(self, value: Any) -> bool:
        annotation, info = self.descriptor.annotation, self.descriptor.parameter_info
        if info.parser is not None or type(value) is not annotation:
            return False
        if isinstance(value, Enum | str):
            return True
        if annotation in (int, float):
            return (info.min is None or value >= info.min) and (
                info.max is None or value <= info.max
            )
        return False

    def _paths(self, value: Any) -> Any:
        """A `Path` of a string, or a list of them of strings, for `Path` and `list[Path]`
        parameters; None for anything else."""
        annotation, info = self.descriptor.annotation, self.descriptor.parameter_info
        if info.parser is not None:
            return None
        if annotation is Path and type(value) is str:
            return Path(value)
        if annotation == list[Path] and all(type(v) is str for v in value or ()):
            return [Path(v) for v in value]
        return None

    def _choice(self, value: Any, ctx: Any) -> Any:
        """The member of an enum a string names, as Typer's check picks it; None if none."""
        annotation, info = self.descriptor.annotation, self.descriptor.parameter_info
        if info.parser is not None or not isinstance(annotation, type):
            return None
        if not issubclass(annotation, Enum) or not isinstance(value, str):
            return None
        from typer._param_types import coerce_cli_choice

        try:
            return coerce_cli_choice(
                value, choices=list(annotation), case_sensitive=info.case_sensitive, ctx=ctx
            )
        except ValueError:  # Typer's own check says so, its way
            return None


def _runtime_param(self: Any) -> Any:
    if self._runtime_param is None:
        self._runtime_param = _Settled(self.type_descriptor)
    return self._runtime_param


def settle() -> None:
    """Give every Typer parameter the check above (once, before the app runs)."""
    if _PARAMETER is not None:
        _PARAMETER.get_runtime_param = _runtime_param
