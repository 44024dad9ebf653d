"""Simulated end-to-end evaluation of edged on the fake scene (see :mod:`edged_sim.run`).

Names are imported lazily, so ``python -m edged_sim.platforms`` (the receivers' child process) does
not import the whole simulation first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SimOptions", "SimResult", "add_sim_parser", "main", "run_sim", "sim_main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edged_sim import run

        return getattr(run, name)
    raise AttributeError(f"module 'edged_sim' has no attribute {name!r}")
