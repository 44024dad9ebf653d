"""The building blocks of every config section: the strict base struct, bounded number types, the error."""

from __future__ import annotations

from typing import Annotated

import msgspec

Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


def Bounds(lo: float, hi: float) -> msgspec.Meta:  # noqa: N802 (reads as a constraint in annotations)
    """The range [lo, hi] of a config number, as in ``Annotated[float, Bounds(0, 10)]``; every value a file or a
    remote set may give is bounded, a plug-in's section's too."""
    return msgspec.Meta(ge=lo, le=hi)


class ConfigError(ValueError):
    """A config file could not be read or failed validation; the message names the key path."""


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section, a plug-in's own included: unknown keys are errors, not silently ignored."""

