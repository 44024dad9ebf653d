"""Track trail events: when a track ends, its entry and exit, direction and speed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edged.core.classes import CLASS_NAMES
from edged.stages.track.observations import TrackTrail


def _point(row: np.void) -> dict[str, Any]:
    box = [float(v) for v in row["box"]]
    gx, gy = (float(v) for v in row["ground"])
    return {
        "timestamp": float(row["timestamp"]),
        "image_id": str(row["image_id"]),
        "frame_index": int(row["frame_index"]),
        "box": box,
        "ground": None if math.isnan(gx) or math.isnan(gy) else [gx, gy],
    }


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """A finished track: where it entered and left, and how it moved.

    ``direction_deg`` is the compass bearing (0 = north, 90 = east) of the ground displacement from
    entry to exit and ``speed_mps`` its length over the time between them; both are ``None`` without a
    calibration or with a single observation. ``image_direction_deg`` is the same in image pixels
    (0 = up, 90 = right) and is given whenever the box moved.
    """

    frame_index: int
    timestamp: float
    track_id: int
    class_name: str
    observations: int
    duration_s: float
    entry: dict[str, Any]
    exit: dict[str, Any]
    direction_deg: float | None
    speed_mps: float | None
    image_direction_deg: float | None
    kind: str = "trail"
    state: str = "end"

    def body(self) -> dict[str, Any]:
        """The event on the wire (the keys track summaries have always had)."""
        return {
            "kind": self.kind,
            "state": self.state,
            "frame_index": self.frame_index,
            "timestamp": self.timestamp,
            "track_id": self.track_id,
            "class": self.class_name,
            "observations": self.observations,
            "duration_s": self.duration_s,
            "entry": self.entry,
            "exit": self.exit,
            "direction_deg": self.direction_deg,
            "speed_mps": self.speed_mps,
            "image_direction_deg": self.image_direction_deg,
        }


def trail_event(trail: TrackTrail, frame_index: int, timestamp: float) -> TrailEvent:
    """The event for a finished track."""
    first, last = trail.first, trail.recent[-1]
    entry, exit_ = _point(first), _point(last)
    dt = exit_["timestamp"] - entry["timestamp"]
    direction = speed = None
    if entry["ground"] and exit_["ground"] and dt > 0:
        dx, dy = exit_["ground"][0] - entry["ground"][0], exit_["ground"][1] - entry["ground"][1]
        direction = math.degrees(math.atan2(dx, dy)) % 360.0
        speed = math.hypot(dx, dy) / dt
    fb, lb = first["box"], last["box"]
    du = (lb[0] + lb[2] - fb[0] - fb[2]) / 2
    dv = (lb[1] + lb[3] - fb[1] - fb[3]) / 2
    image_direction = math.degrees(math.atan2(du, -dv)) % 360.0 if (du or dv) else None
    return TrailEvent(frame_index, timestamp, trail.track_id, CLASS_NAMES[trail.class_id], trail.count, dt,
                      entry, exit_, direction, speed, image_direction)
