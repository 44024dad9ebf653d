"""The per-frame chain of pure stages, timed stage by stage.

A stage is any object with a ``name`` and a ``__call__(work)`` that reads and fills fields of the
:class:`FrameWork` bundle. Stages do no I/O; the daemon runs the whole chain for one frame in an
executor thread and hands the finished bundle to the sinks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edged.core.types import Detections, Frame, StageEvent, TrackedObjects
from edged.link.wire import Envelope

if TYPE_CHECKING:
    from edged.stages.health.checks import HealthReport
    from edged.stages.select.package import UploadPackage
    from edged.stages.track.observations import FrameObservations


@dataclass(slots=True)
class FrameWork:
    """Everything the stages learn about one frame; each field is written by one stage (named)."""

    frame: Frame
    detections: Detections | None = None
    tracks: TrackedObjects | None = None
    deidentified: np.ndarray | None = None
    """The frame as it may leave the device: every sensitive region de-identified."""
    outgoing: list[Envelope] = field(default_factory=list)
    """Messages for the outbox, in order."""
    events: list[StageEvent] = field(default_factory=list)
    """Health and track events raised by the stages."""
    observations: FrameObservations | None = None
    """The tracks' observations in this frame (track stage), for the selection."""
    ended_tracks: np.ndarray | None = None
    """Ids of tracks that ended in this frame (track stage)."""
    upload: UploadPackage | None = None
    """The best images chosen for upload in this frame (select stage), packaged by the package stage."""
    sensitive_rects: np.ndarray | None = None
    """(N, 4) pixel rectangles de-identified in this frame (privacy stage), for the health check."""
    sensitive_regions: int = 0
    """Sensitive regions de-identified in this frame (privacy stage)."""
    sealed_records: int = 0
    """Sealed records made in this frame (privacy stage)."""
    health: HealthReport | None = None
    """The frame's health report (health stage)."""
    timings_ms: dict[str, float] = field(default_factory=dict)


class Stage(Protocol):
    name: str

    def __call__(self, work: FrameWork) -> None: ...


class Pipeline:
    """Runs stages in order on a frame and records how long each took."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages

    def process(self, frame: Frame) -> FrameWork:
        work = FrameWork(frame)
        for stage in self.stages:
            t0 = time.perf_counter()
            stage(work)
            work.timings_ms[stage.name] = (time.perf_counter() - t0) * 1000.0
        return work
