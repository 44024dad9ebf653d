"""The building blocks of every config section: the strict base struct, bounded number types, the error."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


def Bounds(lo: float, hi: float) -> msgspec.Meta:  # noqa: N802 (reads as a constraint in annotations)
    """The range [lo, hi] of a config number, ``Annotated[float, Bounds(0, 10)]``: every value a file or a remote set
    may give is bounded."""
    return msgspec.Meta(ge=lo, le=hi)


def FloatIn(lo: float, hi: float) -> Any:  # noqa: N802 (reads as a type in annotations)
    """A float config value in [lo, hi] (for plug-ins; type checkers want ``Annotated[float, Bounds(lo, hi)]``)."""
    return Annotated[float, Bounds(lo, hi)]


def IntIn(lo: int, hi: int) -> Any:  # noqa: N802
    """An integer config value in [lo, hi] (for plug-ins; type checkers want ``Annotated[int, Bounds(lo, hi)]``)."""
    return Annotated[int, Bounds(lo, hi)]


class ConfigError(ValueError):
    """A config file could not be read or failed validation; the message names the key path."""


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section, a plug-in's own included: unknown keys are errors, not silently ignored."""

