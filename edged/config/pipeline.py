"""``[pipeline]``: the queues between the stages, the stats line and OpenCV's threads."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edged.config.base import Bounds, Section


class PipelineConfig(Section):
    frame_queue: Annotated[int, Bounds(1, 64)] = 2
    """Frames waiting for detection; small, so a lagging detector drops (and counts) the oldest
    frame rather than growing latency."""
    result_queue: Annotated[int, Bounds(1, 1024)] = 16
    stats_period_s: Annotated[float, Bounds(0.5, 3600)] = 5.0
    """How often (s) the daemon logs its stats line (fps, per-stage ms, queue depths, drops)."""
    opencv_threads: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    """Threads OpenCV may use inside one call (resize, colour conversion, blur, encoding); 1, as the
    stages already overlap on threads of their own."""
