"""The name a command's usage line shows: the installed script's own, else ``python -m`` and the module."""

from __future__ import annotations

import sys
from pathlib import Path


def prog_name(module: str) -> str:
    """``edged-store`` when the installed script ``edged-store`` runs, ``python -m <module>`` otherwise."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if not name or name.endswith(".py") or name.startswith("-"):
        return f"python -m {module}"
    return name
