"""The meter-and-lock exposure rule: arithmetic, clamping, timeline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.config import ExposureConfig
from edged.core.types import Exposure, ExposureMode
from edged.runtime.exposure import ExposureController, locked_gain, next_cycle_start


def test_locked_gain_keeps_the_exposure_product() -> None:
    # locked gain = t·g / T_fix: t = 10 ms, g = 4 at T_fix = 2 ms -> 20
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
    # lock after 1 s, re-meter every 10 s start to start (10 s after the previous AE, not after the
    # lock), lock 1 s after each
    assert commands == [
        (1.0, ExposureMode.MANUAL, 2000.0, 8.0),
        (10.0, ExposureMode.AUTO, 0.0, 0.0),
        (11.0, ExposureMode.MANUAL, 2000.0, 8.0),
        (20.0, ExposureMode.AUTO, 0.0, 0.0),
        (21.0, ExposureMode.MANUAL, 2000.0, 8.0),
    ]
    assert len(ctrl.records) == 3 and ctrl.clamp_count == 0


def test_one_cycle_per_period_with_a_fake_clock() -> None:
    # advancing the clock by one re-meter period gives exactly one AUTO -> NON_AUTO cycle
    cfg = ExposureConfig(fixed_shutter_us=2000, remeter_period_s=60, settle_s=1.0)
    ctrl = ExposureController(cfg, gain_range=(1.0, 16.0))
    ctrl.start()
    auto = Exposure(ExposureMode.AUTO, 4000.0, 1.0)
    modes = [cmd.mode for k in range(0, 10 * 60) if (cmd := ctrl.step(k / 10, auto)) is not None]
    assert modes == [ExposureMode.MANUAL]  # first cycle: meter at 0, lock at 1, still locked at 59.9
    darker = Exposure(ExposureMode.AUTO, 8000.0, 1.0)
    later = [cmd.mode for k in range(600, 1200) if (cmd := ctrl.step(k / 10, darker)) is not None]
    assert later == [ExposureMode.AUTO, ExposureMode.MANUAL]
    assert ctrl.records[-1].locked_gain == pytest.approx(4.0)  # recomputed from the new AE reading


def test_remeter_cycles_start_on_a_fixed_grid_whatever_the_frame_times() -> None:
    cfg = ExposureConfig(remeter_period_s=5.0, settle_s=1.0)
    ctrl = ExposureController(cfg, gain_range=(1.0, 16.0))
    ctrl.start()
    auto = Exposure(ExposureMode.AUTO, 4000.0, 1.0)
    starts, t = [], 0.0
    while t < 100.0:  # 7 fps with no common divisor with the period: no drift allowed
        cmd = ctrl.step(t, auto)
        if cmd is not None and cmd.mode is ExposureMode.AUTO:
            starts.append(t)
        t += 1 / 7
    assert len(starts) == 19
    for k, s in enumerate(starts, start=1):
        assert 5.0 * k <= s < 5.0 * k + 1 / 7 + 1e-9, (k, s)  # the first frame at or after k periods


def test_a_stall_skips_the_missed_cycles_instead_of_running_them_late() -> None:
    cfg = ExposureConfig(remeter_period_s=10.0, settle_s=1.0)
    ctrl = ExposureController(cfg, gain_range=(1.0, 16.0))
    ctrl.start()
    auto = Exposure(ExposureMode.AUTO, 4000.0, 1.0)
    assert ctrl.step(0.0, auto) is None and ctrl.step(1.0, auto).mode is ExposureMode.MANUAL
    # no frames for 34 s: one re-meter at the next frame, back on the grid (cycle of 30 s)
    assert ctrl.step(35.0, auto).mode is ExposureMode.AUTO
    assert ctrl.cycle_start == 30.0
    assert ctrl.step(35.5, auto) is None and ctrl.step(36.0, auto).mode is ExposureMode.MANUAL
    assert ctrl.step(39.9, auto) is None
    assert ctrl.step(40.0, auto).mode is ExposureMode.AUTO


@pytest.mark.parametrize(
    ("shutter_range_us", "locked_shutter_us"),
    [((30.0, 1000.0), 1000.0), ((5000.0, 100_000.0), 5000.0), ((30.0, 100_000.0), 2000.0)],
)
def test_fixed_shutter_is_clamped_to_the_cameras_shutter_range(
    shutter_range_us: tuple[float, float], locked_shutter_us: float
) -> None:
    cfg = ExposureConfig(fixed_shutter_us=2000, settle_s=0.0)
    ctrl = ExposureController(cfg, gain_range=(0.5, 16.0), shutter_range_us=shutter_range_us)
    ctrl.start()
    cmd = ctrl.step(0.0, Exposure(ExposureMode.AUTO, 10_000.0, 1.0))
    assert cmd is not None and cmd.mode is ExposureMode.MANUAL
    assert cmd.shutter_us == locked_shutter_us
    # the gain keeps the product at the shutter actually locked, not at the configured T_fix
    assert cmd.gain * cmd.shutter_us == pytest.approx(10_000.0)
    assert ctrl.records[-1].locked_shutter_us == locked_shutter_us and not ctrl.records[-1].clamped


def test_clamp_is_recorded_with_config_max_gain() -> None:
    cfg = ExposureConfig(fixed_shutter_us=2000, settle_s=0.0, max_gain=8.0)
    ctrl = ExposureController(cfg, gain_range=(1.0, 32.0))
    ctrl.start()
    cmd = ctrl.step(0.0, Exposure(ExposureMode.AUTO, 30_000.0, 4.0))
    assert cmd is not None and cmd.gain == 8.0
    rec = ctrl.records[-1]
    assert rec.clamped and rec.wanted_gain == pytest.approx(60.0) and ctrl.clamp_count == 1


def test_next_cycle_start_is_the_latest_grid_point_not_after_now() -> None:
    assert next_cycle_start(100.0, 60.0, 160.0) == 160.0
    assert next_cycle_start(100.0, 60.0, 160.1) == 160.0
    assert next_cycle_start(100.0, 60.0, 279.0) == 220.0  # a stall over one whole cycle skips it
