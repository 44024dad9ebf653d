"""Typed messages that flow through the pipeline.

Per-frame collections (detections, tracks) are struct-of-arrays:
one numpy array per field, row ``i`` of each array describes object ``i``.
Boxes are ``float32`` ``(N, 4)`` arrays of ``x1, y1, x2, y2`` in pixels.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import numpy as np


class ExposureMode(enum.StrEnum):
    """Camera exposure mode: ``auto`` (AE on) or ``manual`` (shutter and gain locked)."""

    AUTO = "auto"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Exposure:
    """Exposure actually in effect for a frame (or read back from the camera)."""

    mode: ExposureMode
    shutter_us: float
    gain: float


@dataclass(frozen=True, slots=True)
class Position:
    """Camera position: WGS-84 latitude/longitude in degrees, altitude in metres."""

    lat: float = 0.0
    lon: float = 0.0
    alt: float = 0.0


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class CapturedImage:
    """What a camera backend returns from one capture: pixels plus what the sensor reports."""

    pixels: np.ndarray
    """``(H, W, 3)`` ``uint8`` BGR."""
    exposure: Exposure
    timestamp: float
    """Capture time, seconds since the Unix epoch."""
    ground_truth: object | None = None
    """What a simulated source knows it drew (``edged_sim``); the device carries it and never reads it."""


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """Metadata a frame carries from capture to the end of the pipeline."""

    image_id: str
    """Unique and time-ordered (ULID)."""
    frame_index: int
    video_id: str
    """Segment the frame belongs to (ULID of the segment start)."""
    timestamp: float
    exposure: Exposure
    position: Position
    width: int
    height: int


@dataclass(slots=True)
class Frame:
    """One captured image with its metadata."""

    meta: FrameMeta
    pixels: np.ndarray
    ground_truth: object | None = None
    """Carried from :class:`CapturedImage` for evaluation sinks; never read on the device."""


@dataclass(slots=True)
class Detections:
    """Detector output for one frame (struct-of-arrays).

    A detection is centre ``(cx, cy)``, size ``(w, h)``, orientation ``angle`` (radians, 0 for
    axis-aligned), class and score; boxes are stored as ``x1, y1, x2, y2`` and the centre/size form
    is derived on demand.
    """

    boxes: np.ndarray = field(default_factory=empty_boxes)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    angles: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def cxcywh(self) -> np.ndarray:
        b = self.boxes
        return np.stack(
            [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
            axis=1,
        ).astype(np.float32)

    def select(self, keep: np.ndarray) -> Detections:
        """Rows where ``keep`` (bool mask or index array) holds."""
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep], self.angles[keep])

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        if not parts:
            return Detections()
        return Detections(
            np.concatenate([p.boxes for p in parts]).astype(np.float32),
            np.concatenate([p.scores for p in parts]).astype(np.float32),
            np.concatenate([p.class_ids for p in parts]).astype(np.int16),
            np.concatenate([p.angles for p in parts]).astype(np.float32),
        )


@dataclass(slots=True)
class TrackedObjects:
    """Tracker output for one frame (struct-of-arrays): every live track of every class.

    ``detected[i]`` is True when track ``i`` matched a detection in this frame, False when its box is
    the Kalman prediction (the detector missed it; privacy still covers the region).
    """

    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    boxes: np.ndarray = field(default_factory=empty_boxes)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    angles: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    detected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    first_scores: np.ndarray | None = None
    """The score of the detection that started each track (``None``: not known)."""

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    def confidences(self) -> np.ndarray:
        """How sure each track is: the higher of the score it started with and its last one."""
        return self.scores if self.first_scores is None else np.maximum(self.first_scores, self.scores)

    def select(self, keep: np.ndarray) -> TrackedObjects:
        return TrackedObjects(
            self.track_ids[keep],
            self.class_ids[keep],
            self.boxes[keep],
            self.scores[keep],
            self.angles[keep],
            self.detected[keep],
            None if self.first_scores is None else self.first_scores[keep],
        )


EventMap: TypeAlias = dict[str, Any]
"""An event's body as it goes on the wire: ``kind`` (``cover``, ``freeze``, ``trail``...), ``state``
(``start``, ``update``, ``end``), ``frame_index``, ``timestamp``, ``type`` on health events, and the
figures of its kind."""


class StageEvent(Protocol):
    """An event a stage raises for its frame (a health change, an ended track): typed fields, and
    the body the outbox and the event listeners carry."""

    @property
    def kind(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def frame_index(self) -> int: ...

    @property
    def timestamp(self) -> float: ...

    def body(self) -> EventMap:
        """The event as the map that goes on the wire."""
        ...
