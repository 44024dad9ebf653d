"""The exposure rule "meter and lock" as a pure controller.

At start the camera runs auto exposure (AE). After ``settle_s`` the controller reads the shutter T₁
and gain S₁ that AE chose and locks the camera to the fixed short shutter ``T_fix`` with gain
``S = T₁·S₁ / T_fix`` (clamped to the sensor's range, the clamp recorded). Every ``remeter_period_s``
it hands control back to AE and repeats. ``T_fix`` itself is clamped to the camera's shutter range.

The period runs start to start (every re-meter period the camera goes back to auto exposure):
cycle *k* begins at ``t₀ + k·remeter_period_s``, where ``t₀`` is the first metering start, so one
cycle is ``settle_s`` of AE followed by ``remeter_period_s - settle_s`` locked, and the period in the
config is the period the camera keeps (a period counted from the lock would make every cycle
``settle_s`` longer than configured).
The schedule is a fixed grid, so it does not drift by a frame interval each cycle; a cycle missed
while no frames came (a stalled camera) is skipped rather than run late in a burst
(:func:`next_cycle_start`). The settle time counts from the frame at which AE was actually
commanded. A ``settle_s`` as long as the period leaves no time locked: each lock then lasts one frame.

The controller does no I/O: :meth:`ExposureController.step` takes the exposure the camera reports
for the latest frame and returns the command the caller must apply, or ``None``.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from edged.config import ExposureConfig
from edged.core.types import Exposure, ExposureMode


def locked_gain(
    auto_shutter_us: float, auto_gain: float, fixed_shutter_us: float, gain_range: tuple[float, float]
) -> tuple[float, bool]:
    """Gain that keeps the metered exposure product at the fixed shutter: ``T₁·S₁ / T_fix``.

    Returns the gain clamped to ``gain_range`` and whether it had to be clamped.
    """
    if fixed_shutter_us <= 0:
        raise ValueError(f"fixed shutter must be positive, got {fixed_shutter_us}")
    wanted = auto_shutter_us * auto_gain / fixed_shutter_us
    low, high = gain_range
    gain = min(max(wanted, low), high)
    return gain, gain != wanted


def next_cycle_start(cycle_start: float, period_s: float, now: float) -> float:
    """Start of the re-meter cycle that is due at ``now``: the latest ``cycle_start + k·period_s``
    (``k ≥ 1``) not after ``now``. Cycles run start to start on that grid; ones a stall skipped over
    are not made up. Only meaningful once ``now - cycle_start >= period_s``.
    """
    return cycle_start + max(1, int((now - cycle_start) // period_s)) * period_s


@dataclass(frozen=True, slots=True)
class ExposureCommand:
    """What the camera must do next: hand over to AE, or lock shutter and gain."""

    mode: ExposureMode
    shutter_us: float = 0.0
    gain: float = 0.0


@dataclass(frozen=True, slots=True)
class MeterRecord:
    """One meter-and-lock cycle: what AE read and what was locked."""

    time: float
    auto_shutter_us: float
    auto_gain: float
    locked_shutter_us: float
    locked_gain: float
    clamped: bool
    wanted_gain: float


class Phase(enum.StrEnum):
    IDLE = "idle"
    METERING = "metering"
    LOCKED = "locked"


class ExposureController:
    """Drives the meter-and-lock timeline from frame timestamps."""

    def __init__(
        self,
        config: ExposureConfig,
        gain_range: tuple[float, float],
        shutter_range_us: tuple[float, float] = (1.0, 1e9),
        history: int = 256,
    ) -> None:
        self.config = config
        self.gain_range = (gain_range[0], min(gain_range[1], config.max_gain))
        low, high = shutter_range_us
        self.fixed_shutter_us = min(max(config.fixed_shutter_us, low), high)
        self.phase = Phase.IDLE
        self.phase_since: float | None = None
        """When the current phase began (the frame at which AE was commanded, or the lock)."""
        self.cycle_start: float | None = None
        """Scheduled start of the current meter-and-lock cycle; the next one is a period later."""
        self.records: deque[MeterRecord] = deque(maxlen=history)
        self.clamp_count = 0

    def start(self, now: float | None = None) -> ExposureCommand:
        """Begin metering: the camera must switch to auto exposure.

        ``now=None`` starts the settle timer at the next :meth:`step` (the first frame's time), so
        the timeline runs on frame timestamps whatever clock the camera uses.
        """
        self.phase, self.phase_since, self.cycle_start = Phase.METERING, now, now
        return ExposureCommand(ExposureMode.AUTO)

    def step(self, now: float, reading: Exposure) -> ExposureCommand | None:
        """Advance the timeline to ``now`` given the camera's latest reported exposure."""
        if self.phase_since is None:
            self.phase_since = now
        if self.cycle_start is None:
            self.cycle_start = now
        period = self.config.remeter_period_s
        if self.phase is Phase.METERING and now - self.phase_since >= self.config.settle_s:
            return self._lock(now, reading)
        if self.phase is Phase.LOCKED and now - self.cycle_start >= period:  # start to start
            self.phase, self.phase_since = Phase.METERING, now
            self.cycle_start = next_cycle_start(self.cycle_start, period, now)
            return ExposureCommand(ExposureMode.AUTO)
        return None

    def _lock(self, now: float, reading: Exposure) -> ExposureCommand:
        gain, clamped = locked_gain(reading.shutter_us, reading.gain, self.fixed_shutter_us, self.gain_range)
        wanted = reading.shutter_us * reading.gain / self.fixed_shutter_us
        self.records.append(
            MeterRecord(now, reading.shutter_us, reading.gain, self.fixed_shutter_us, gain, clamped, wanted)
        )
        self.clamp_count += clamped
        self.phase, self.phase_since = Phase.LOCKED, now
        return ExposureCommand(ExposureMode.MANUAL, self.fixed_shutter_us, gain)
