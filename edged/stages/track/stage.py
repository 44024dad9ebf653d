"""The tracking stage for :class:`edged.stages.pipeline.Pipeline`: detections in, tracks and observations out.

Reads ``work.detections``; writes ``work.tracks`` (:class:`~edged.core.types.TrackedObjects`),
``work.observations`` (:class:`~edged.stages.track.observations.FrameObservations`),
``work.ended_tracks`` (ids) and one ``trail`` event per ended track into ``work.events``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edged.config import CalibrationConfig, Config, resolve_path
from edged.core.types import Detections, FrameMeta
from edged.stages.track.calibration import GroundProjector
from edged.stages.track.ids import IdAllocator, IdSource
from edged.stages.track.observations import FrameObservations, TrackHistory
from edged.stages.track.tracker import Tracker, TrackStep
from edged.stages.track.trail import TrailEvent, trail_event

if TYPE_CHECKING:
    from edged.stages.pipeline import FrameWork


class Tracking:
    """Tracker + per-track history, callable without the pipeline: ``step(meta, detections)``."""

    def __init__(self, tracker: Tracker, history_len: int, calibration: CalibrationConfig) -> None:
        self.tracker = tracker
        self.calibration = calibration
        self.history = TrackHistory(history_len, GroundProjector(None))
        self._size: tuple[int, int] | None = None

    @classmethod
    def from_config(cls, config: Config, ids: IdSource | None = None) -> Tracking:
        """Ids default to the persistent allocator in ``device.data_dir``."""
        if ids is None:
            ids = IdAllocator.in_dir(resolve_path(config.device.data_dir), config.track.id_block)
        tracker = Tracker(config.track, ids, config.camera.fps)
        return cls(tracker, config.track.history_len, config.calibration)

    def step(self, meta: FrameMeta, detections: Detections) -> tuple[TrackStep, FrameObservations, list[TrailEvent]]:
        """Track one frame; returns the tracker's step, the frame's observations and trail events."""
        if self._size != (meta.width, meta.height):
            self.history.projector = GroundProjector.from_config(self.calibration, meta.width, meta.height)
            self._size = (meta.width, meta.height)
        step = self.tracker.update(meta, detections)
        observations = self.history.record(meta, step.objects)
        events = [trail_event(t, meta.frame_index, meta.timestamp) for t in self.history.end(step.ended_ids)]
        return step, observations, events


class TrackStage:
    """Pipeline stage ``track``."""

    name = "track"

    def __init__(self, tracking: Tracking) -> None:
        self.tracking = tracking

    @classmethod
    def from_config(cls, config: Config, ids: IdSource | None = None) -> TrackStage:
        return cls(Tracking.from_config(config, ids))

    def __call__(self, work: FrameWork) -> None:
        detections = work.detections if work.detections is not None else Detections()
        step, observations, events = self.tracking.step(work.frame.meta, detections)
        work.tracks = step.objects
        work.observations = observations
        work.ended_tracks = step.ended_ids
        work.events.extend(events)
