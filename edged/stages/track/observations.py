"""Per-track observations: what the track saw in each image where it was detected.

An observation row holds the image's timestamp, id, frame index, exposure mode and camera position,
and the track's box (``x1, y1, x2, y2`` of the unrotated box), orientation, score and ground point.
Rows are records of :data:`OBS_DTYPE`, so one frame's observations are one structured array and a
track's history is a bounded ring of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edged.core.types import ExposureMode, FrameMeta, TrackedObjects
from edged.stages.track.calibration import GroundProjector, bottom_centres

OBS_DTYPE = np.dtype(
    [
        ("timestamp", "f8"),
        ("frame_index", "i8"),
        ("image_id", "U40"),
        ("manual", "?"),
        ("lat", "f8"),
        ("lon", "f8"),
        ("alt", "f8"),
        ("box", "f4", (4,)),
        ("angle", "f4"),
        ("score", "f4"),
        ("ground", "f8", (2,)),
    ]
)
"""One observation. ``manual`` is True when the image was taken in manual (locked) exposure;
``ground`` is the box's bottom centre on the ground in metres (NaN without calibration)."""


@dataclass(slots=True)
class FrameObservations:
    """The observations made in one image: row ``i`` is track ``track_ids[i]``'s observation."""

    meta: FrameMeta
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=OBS_DTYPE))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """How many observations the track has, this one included."""

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    def select(self, keep: np.ndarray) -> FrameObservations:
        return FrameObservations(self.meta, self.track_ids[keep], self.class_ids[keep], self.rows[keep],
                                 self.counts[keep])


@dataclass(slots=True)
class TrackTrail:
    """A finished track's history: its first observation, its last ``history_len`` ones (time
    order) and how many it had in all. Trail events (entry, exit, direction, speed) come from it."""

    track_id: int
    class_id: int
    first: np.void
    recent: np.ndarray
    count: int


@dataclass(slots=True)
class _Ring:
    class_id: int
    first: np.void
    rows: np.ndarray
    count: int = 0

    def ordered(self) -> np.ndarray:
        cap = self.rows.shape[0]
        if self.count <= cap:
            return self.rows[: self.count].copy()
        start = self.count % cap
        return np.concatenate([self.rows[start:], self.rows[:start]])


class TrackHistory:
    """Records each frame's observations into bounded per-track rings.

    ``record(meta, objects)`` takes the tracker's output for a frame (only rows with
    ``detected=True`` are observations), adds the ground points and returns the frame's
    :class:`FrameObservations`; ``end(ids)`` closes tracks and returns their :class:`TrackTrail`.
    """

    def __init__(self, history_len: int, projector: GroundProjector) -> None:
        if history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {history_len}")
        self.history_len = history_len
        self.projector = projector
        self._rings: dict[int, _Ring] = {}

    def __len__(self) -> int:
        return len(self._rings)

    def frame_rows(self, meta: FrameMeta, objects: TrackedObjects) -> np.ndarray:
        """Observation rows for the detected tracks of one frame (no state change)."""
        det = objects.select(objects.detected)
        rows = np.zeros(len(det), dtype=OBS_DTYPE)
        rows["timestamp"] = meta.timestamp
        rows["frame_index"] = meta.frame_index
        rows["image_id"] = meta.image_id
        rows["manual"] = meta.exposure.mode == ExposureMode.MANUAL
        rows["lat"], rows["lon"], rows["alt"] = meta.position.lat, meta.position.lon, meta.position.alt
        rows["box"] = det.boxes
        rows["angle"] = det.angles
        rows["score"] = det.scores
        rows["ground"] = self.projector.to_ground(bottom_centres(det.boxes, det.angles))
        return rows

    def record(self, meta: FrameMeta, objects: TrackedObjects) -> FrameObservations:
        det = objects.select(objects.detected)
        rows = self.frame_rows(meta, objects)
        counts = np.zeros(len(det), dtype=np.int64)
        cap = self.history_len
        for i, (tid, cid) in enumerate(zip(det.track_ids.tolist(), det.class_ids.tolist(), strict=True)):
            ring = self._rings.get(tid)
            if ring is None:
                ring = _Ring(int(cid), rows[i].copy(), np.zeros(cap, dtype=OBS_DTYPE))
                self._rings[tid] = ring
            ring.rows[ring.count % cap] = rows[i]
            ring.count += 1
            counts[i] = ring.count
        return FrameObservations(meta, det.track_ids.astype(np.int64), det.class_ids.astype(np.int16), rows, counts)

    def observations(self, track_id: int) -> np.ndarray:
        """The track's kept observations in time order (empty for an unknown id)."""
        ring = self._rings.get(track_id)
        return ring.ordered() if ring else np.zeros(0, dtype=OBS_DTYPE)

    def count(self, track_id: int) -> int:
        ring = self._rings.get(track_id)
        return ring.count if ring else 0

    def end(self, track_ids: np.ndarray | list[int]) -> list[TrackTrail]:
        """Close tracks: forget their history and return it (ids never observed are skipped)."""
        trails = []
        for tid in np.asarray(track_ids, dtype=np.int64).tolist():
            ring = self._rings.pop(tid, None)
            if ring is not None:
                trails.append(TrackTrail(tid, ring.class_id, ring.first, ring.ordered(), ring.count))
        return trails
