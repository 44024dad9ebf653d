"""msgspec's validation messages split into where and what, for the config's and the sealed
records' own one-line errors."""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

_LOCATION = re.compile(r" - at (?P<key>`key` in )?`\$\.?(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<key>[^`]+)`")


@dataclass(frozen=True)
class Problem:
    """One validation error: the dotted ``path`` of the value (``""`` for the top), what is wrong with
    it (back-quotes removed, lower-case start), whether a map *key* is wrong, and the field an
    ``unknown`` or ``missing`` message names (already joined to ``path``)."""

    path: str
    what: str
    on_key: bool = False
    unknown: str | None = None
    missing: str | None = None


def problem(err: msgspec.ValidationError, prefix: str = "") -> Problem:
    """``err`` as a :class:`Problem`; ``prefix`` is the validated value's own path."""
    text = str(err)
    at = _LOCATION.search(text)
    path = ".".join(p for p in (prefix, at.group("path") if at else "") if p)
    what = text[: at.start()] if at else text
    unknown, missing = _UNKNOWN.match(what), _MISSING.match(what)
    what = what.replace("`", "")
    what = what[:1].lower() + what[1:]
    return Problem(path, what, bool(at and at.group("key")),
                   _join(path, unknown.group("key")) if unknown else None,
                   _join(path, missing.group("key")) if missing else None)


def _join(path: str, key: str) -> str:
    """``path.key``, or ``key`` at the top."""
    return f"{path}.{key}" if path else key
