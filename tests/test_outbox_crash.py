"""SIGKILL a real writer process at random moments: nothing reported stored is lost, nothing corrupt."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.bench.crash_trial import run_trials


@pytest.mark.slow
def test_sigkill_trials_lose_nothing_and_corrupt_nothing(tmp_path: Path) -> None:
    rep = run_trials(8, tmp_path, seed=11, max_delay_s=0.3, log=False)
    assert rep.trials == rep.kills == 8
    assert rep.reported_stored > 50 and rep.reported_acked > 0  # the writer really worked before dying
    assert rep.integrity_failures == []
    assert rep.corrupt == []
    assert rep.lost == [], f"reported stored but gone: {rep.lost[:5]}"
    assert rep.resurrected == [], f"acked but back: {rep.resurrected[:5]}"
    assert rep.unknown == []
