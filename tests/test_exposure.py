"""The meter-and-lock exposure rule (SPEC S1): arithmetic, clamping, timeline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.config import ExposureConfig
from edged.exposure import ExposureController, locked_gain
from edged.types import Exposure, ExposureMode


def test_locked_gain_keeps_the_exposure_product() -> None:
    # seed 002 example: t = 10 ms, g = 4 at T_fix = 2 ms -> 20
    gain, clamped = locked_gain(10_000, 4.0, 2_000, (1.0, 64.0))
    assert gain == pytest.approx(20.0)
    assert not clamped


def test_locked_gain_clamps_high_and_low() -> None:
    assert locked_gain(33_000, 8.0, 2_000, (1.0, 16.0)) == (16.0, True)
    assert locked_gain(100, 1.0, 2_000, (1.0, 16.0)) == (1.0, True)


def test_locked_gain_rejects_nonpositive_shutter() -> None:
    with pytest.raises(ValueError, match="fixed shutter"):
        locked_gain(1000, 1.0, 0, (1.0, 16.0))


@given(
    t=st.floats(10, 100_000),
    g=st.floats(1, 16),
    t_fix=st.floats(50, 20_000),
)
def test_product_preserved_unless_clamped(t: float, g: float, t_fix: float) -> None:
    gain, clamped = locked_gain(t, g, t_fix, (1.0, 16.0))
    assert 1.0 <= gain <= 16.0
    if not clamped:
        assert gain * t_fix == pytest.approx(t * g, rel=1e-9)


def test_timeline_meters_locks_and_remeters() -> None:
    cfg = ExposureConfig(fixed_shutter_us=2000, remeter_period_s=10, settle_s=1.0, max_gain=16)
    ctrl = ExposureController(cfg, gain_range=(1.0, 32.0))
    assert ctrl.start().mode is ExposureMode.AUTO
    auto = Exposure(ExposureMode.AUTO, 8000.0, 2.0)
    commands = []
    for k in range(0, 250):  # 25 s at 10 fps
        t = 100.0 + k / 10
        cmd = ctrl.step(t, auto)
        if cmd is not None:
            commands.append((round(t - 100.0, 1), cmd.mode, cmd.shutter_us, cmd.gain))
    # lock after 1 s, re-meter 10 s later, lock 1 s after that, and so on
    assert commands == [
        (1.0, ExposureMode.MANUAL, 2000.0, 8.0),
        (11.0, ExposureMode.AUTO, 0.0, 0.0),
        (12.0, ExposureMode.MANUAL, 2000.0, 8.0),
        (22.0, ExposureMode.AUTO, 0.0, 0.0),
        (23.0, ExposureMode.MANUAL, 2000.0, 8.0),
    ]
    assert len(ctrl.records) == 3 and ctrl.clamp_count == 0


def test_clamp_is_recorded_with_config_max_gain() -> None:
    cfg = ExposureConfig(fixed_shutter_us=2000, settle_s=0.0, max_gain=8.0)
    ctrl = ExposureController(cfg, gain_range=(1.0, 32.0))
    ctrl.start()
    cmd = ctrl.step(0.0, Exposure(ExposureMode.AUTO, 30_000.0, 4.0))
    assert cmd is not None and cmd.gain == 8.0
    rec = ctrl.records[-1]
    assert rec.clamped and rec.wanted_gain == pytest.approx(60.0) and ctrl.clamp_count == 1
