"""Simulated end-to-end evaluation of edged on the fake scene (see :mod:`tools.sim.run`).

Names are imported lazily, so ``python -m tools.sim.platforms`` (the receivers' child process) does
not import the whole simulation first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SimOptions", "SimResult", "add_sim_parser", "main", "run_sim", "sim_main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tools.sim import run

        return getattr(run, name)
    raise AttributeError(f"module 'tools.sim' has no attribute {name!r}")
