"""The fault-injection trials' short version: the real daemon killed mid-flush, and on a 1 MiB disk,
against real mosquitto and receivers; nothing lost outside the eviction policy, no crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edged_sim.broker import mosquitto_path
from tools.bench.fault_inject import Figures, run_trial, toml_text


def test_toml_text_round_trips_a_config_tree() -> None:
    import tomllib

    tree = {"a": 1, "b": {"c": "x\"y", "d": [1, 2], "e": {"f": True}}, "m": [{"n": 1.5}, {"n": 2.0}]}
    assert tomllib.loads(toml_text(tree)) == tree


@pytest.mark.slow
@pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed")
@pytest.mark.parametrize("trial", ["sigkill", "disk-1m"])
def test_a_short_trial_loses_nothing(tmp_path: Path, trial: str) -> None:
    import asyncio

    if trial.startswith("disk-") and os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    fig: Figures = asyncio.run(run_trial(trial, 4.0, tmp_path, seed=3, backlog=40))
    assert fig.crashes == 0, fig.notes
    assert fig.enqueued > 20 and fig.delivered > 0
    assert fig.lost <= 0 and fig.pending == 0, fig
    if trial == "disk-1m":
        assert fig.evicted > 0 and fig.refused == 0, fig
