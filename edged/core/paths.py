"""Paths the config names: absolute as given, relative ones from the working directory."""

from __future__ import annotations

from pathlib import Path


def resolve_path(value: str) -> Path:
    """Resolve a path from the config: absolute as is, else relative to the working directory."""
    p = Path(value)
    return p if p.is_absolute() else Path.cwd() / p
