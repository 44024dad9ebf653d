"""``[exposure]``: meter, then lock a short fixed shutter."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edged.config.base import Bounds, Section


class ExposureConfig(Section):
    """Exposure "meter and lock": auto exposure runs for a moment, then the camera is locked to a
    short fixed shutter with the gain that keeps the metered brightness, so moving objects stay sharp."""

    enabled: bool = True
    fixed_shutter_us: Annotated[float, msgspec.Meta(ge=10, le=1_000_000)] = 2000.0
    """Fixed shutter time (µs) while locked; 2 ms keeps a car at 60 km/h within a pixel of motion."""
    remeter_period_s: Annotated[float, Bounds(1, 86_400)] = 60.0
    """Period (s, start to start) of the meter-and-lock cycle; a minute, as daylight changes slowly
    and each re-meter costs a few auto frames."""
    settle_s: Annotated[float, Bounds(0, 60)] = 1.0
    """How long (s) AE runs before T and S are read; libcamera's AE converges in ~10-20 frames."""
    max_gain: Annotated[float, Bounds(1, 64)] = 16.0
    """Upper clamp on the computed gain; above ~16x noise ruins plates at night, so the frame gets
    darker instead."""
