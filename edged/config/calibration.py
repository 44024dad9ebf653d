"""``[calibration]``: the image -> ground mapping."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from edged.config.base import Bounds, Section


class CalibrationConfig(Section):
    """Image -> ground mapping for the ground point of each observation, in metres on a flat ground
    plane centred below the camera: ``x`` east, ``y`` north (with ``yaw_deg`` 0 the camera looks north)."""

    model: Literal["none", "homography", "pinhole"] = "none"
    """``none`` (ground points are NaN), ``homography`` (the 3x3 ``homography``, pixels -> ground
    metres) or ``pinhole`` (intrinsics, mounting height and angles); ``none`` by default, as a made-up
    calibration gives wrong positions that look right."""
    homography: list[list[Annotated[float, Bounds(-1e9, 1e9)]]] = msgspec.field(
        default_factory=lambda: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    )
    """Row-major 3x3 image (u, v, 1) -> ground (x, y, 1), e.g. from ``cv2.findHomography`` on four or
    more surveyed road markings."""
    fx: Annotated[float, Bounds(1, 1e6)] = 1000.0
    """Focal length in pixels (from ``cv2.calibrateCamera``)."""
    fy: Annotated[float, Bounds(1, 1e6)] = 1000.0
    cx: Annotated[float, Bounds(-1e5, 1e5)] | None = None
    """Principal point; ``None`` is the image centre."""
    cy: Annotated[float, Bounds(-1e5, 1e5)] | None = None
    distortion: list[Annotated[float, Bounds(-1e3, 1e3)]] = []
    """OpenCV distortion coefficients (k1, k2, p1, p2[, k3...]); empty for none."""
    height_m: Annotated[float, Bounds(0.1, 1000)] = 6.0
    """Camera height above the road: 6 m is a typical roadside pole."""
    pitch_deg: Annotated[float, msgspec.Meta(gt=0, le=90)] = 15.0
    """Downward tilt of the optical axis below the horizon (must be > 0 to see the ground)."""
    yaw_deg: Annotated[float, Bounds(-360, 360)] = 0.0
    """Compass bearing of the optical axis, degrees clockwise from north."""
    roll_deg: Annotated[float, Bounds(-360, 360)] = 0.0
    """Rotation about the optical axis, clockwise as seen from behind the camera."""

    def __post_init__(self) -> None:
        rows = self.homography
        if len(rows) != 3 or any(len(r) != 3 for r in rows):
            raise ValueError("homography must be 3 rows of 3 numbers")
        if len(self.distortion) not in (0, 4, 5, 8, 12, 14):
            raise ValueError(f"distortion must have 0, 4, 5, 8, 12 or 14 coefficients, got {len(self.distortion)}")
