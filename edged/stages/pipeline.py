"""The per-frame chain of pure stages, timed stage by stage.

A stage is any object with a ``name`` and a ``__call__(work)`` that reads and fills fields of the
:class:`FrameWork` bundle. Stages do no I/O; the daemon runs a frame's detection on one executor thread
and the stages after it on another (the next frame's detection meanwhile), then hands the finished
bundle to the sinks.
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
    """Runs stages in order on a frame and records how long each took.

    :meth:`start` runs the stages up to the detect stage and :meth:`finish` the rest, so that a
    caller may detect on the next frame while the last one finishes; :meth:`process` runs both.
    """

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages
        self.split = next((i + 1 for i, s in enumerate(stages) if s.name == "detect"), 0)
        """Stages before this index are :meth:`start`'s (none without a detect stage)."""

    def process(self, frame: Frame) -> FrameWork:
        return self.finish(self.start(frame))

    def start(self, frame: Frame) -> FrameWork:
        """A new frame through the stages up to and including detection."""
        return self._run(FrameWork(frame), self.stages[: self.split])

    def finish(self, work: FrameWork) -> FrameWork:
        """A started frame through the stages after detection."""
        return self._run(work, self.stages[self.split :])

    @staticmethod
    def _run(work: FrameWork, stages: list[Stage]) -> FrameWork:
        for stage in stages:
            t0 = time.perf_counter()
            stage(work)
            work.timings_ms[stage.name] = (time.perf_counter() - t0) * 1000.0
        return work
