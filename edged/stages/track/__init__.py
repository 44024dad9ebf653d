"""Tracking: ByteTrack-style per-class tracker, observations, ground points, track ids.

Main entry points: :class:`edged.stages.track.stage.Tracking` (``from_config(config).step(meta, dets)``) and
:class:`edged.stages.track.stage.TrackStage` for the pipeline; the pieces are :class:`Tracker`,
:class:`TrackHistory`, :class:`GroundProjector` and :class:`IdAllocator`.
"""

from edged.stages.track.calibration import GroundProjector
from edged.stages.track.ids import IdAllocator, MemoryIds
from edged.stages.track.observations import OBS_DTYPE, FrameObservations, TrackHistory, TrackTrail
from edged.stages.track.tracker import Tracker, TrackStep

__all__ = [
    "OBS_DTYPE",
    "FrameObservations",
    "GroundProjector",
    "IdAllocator",
    "MemoryIds",
    "TrackHistory",
    "TrackStep",
    "TrackTrail",
    "Tracker",
]
