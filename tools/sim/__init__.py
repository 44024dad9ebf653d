"""Simulated end-to-end evaluation of edged on the fake scene (see :mod:`tools.sim.run`)."""

from tools.sim.run import SimOptions, SimResult, add_sim_parser, main, run_sim, sim_main

__all__ = ["SimOptions", "SimResult", "add_sim_parser", "main", "run_sim", "sim_main"]
