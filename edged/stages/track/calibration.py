"""Image -> ground projection for the ground point of an observation.

Both calibration models reduce to one 3x3 homography from (undistorted) image pixels to ground-plane
metres: ``homography`` is given directly; ``pinhole`` builds it from intrinsics and the camera's
height, pitch, yaw and roll above a flat road. Ground frame: ``x`` east, ``y`` north, ``z`` up, origin
on the ground below the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edged.config import CalibrationConfig


class CalibrationError(ValueError):
    """The calibration cannot map the image to the ground (singular homography, bad angles)."""


def camera_rotation(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """Camera-to-ground rotation whose columns are the camera's right, down and forward axes."""
    pitch, yaw, roll = np.radians([pitch_deg, yaw_deg, roll_deg])
    forward = np.array([np.sin(yaw) * np.cos(pitch), np.cos(yaw) * np.cos(pitch), -np.sin(pitch)])
    right = np.array([np.cos(yaw), -np.sin(yaw), 0.0])
    down = np.cross(forward, right)
    # Roll turns right/down about forward (clockwise as seen from behind the camera).
    right, down = np.cos(roll) * right + np.sin(roll) * down, -np.sin(roll) * right + np.cos(roll) * down
    return np.stack([right, down, forward], axis=1)


def intrinsic_matrix(config: CalibrationConfig, width: int, height: int) -> np.ndarray:
    cx = (width - 1) / 2.0 if config.cx is None else config.cx
    cy = (height - 1) / 2.0 if config.cy is None else config.cy
    return np.array([[config.fx, 0.0, cx], [0.0, config.fy, cy], [0.0, 0.0, 1.0]])


def pinhole_ground_to_image(config: CalibrationConfig, width: int, height: int) -> np.ndarray:
    """Homography from ground (x, y, 1) to undistorted image pixels for a pinhole camera."""
    rot = camera_rotation(config.pitch_deg, config.yaw_deg, config.roll_deg)
    centre = np.array([0.0, 0.0, config.height_m])
    world_to_cam = rot.T
    translation = -world_to_cam @ centre
    return intrinsic_matrix(config, width, height) @ np.column_stack(
        [world_to_cam[:, 0], world_to_cam[:, 1], translation]
    )


@dataclass(frozen=True, slots=True)
class GroundProjector:
    """Projects image points to the ground; ``image_to_ground`` is None when uncalibrated."""

    image_to_ground: np.ndarray | None
    camera_matrix: np.ndarray | None = None
    distortion: np.ndarray | None = None

    @classmethod
    def from_config(cls, config: CalibrationConfig, width: int, height: int) -> GroundProjector:
        if config.model == "none":
            return cls(None)
        if config.model == "homography":
            matrix = np.asarray(config.homography, dtype=np.float64)
            if abs(np.linalg.det(matrix)) < 1e-12:
                raise CalibrationError("calibration.homography is singular (determinant 0)")
            return cls(matrix)
        forward = pinhole_ground_to_image(config, width, height)
        if abs(np.linalg.det(forward)) < 1e-12:
            raise CalibrationError("calibration: the pinhole camera does not see the ground plane")
        dist = np.asarray(config.distortion, dtype=np.float64) if config.distortion else None
        return cls(np.linalg.inv(forward), intrinsic_matrix(config, width, height), dist)

    def to_ground(self, points: np.ndarray) -> np.ndarray:
        """``(N, 2)`` image points -> ``(N, 2)`` ground metres; NaN when uncalibrated or above the horizon."""
        pts: np.ndarray = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if self.image_to_ground is None or pts.shape[0] == 0:
            return np.full((pts.shape[0], 2), np.nan)
        if self.distortion is not None and self.camera_matrix is not None:
            pts = cv2.undistortPoints(pts.reshape(-1, 1, 2), self.camera_matrix, self.distortion, P=self.camera_matrix)
            pts = pts.reshape(-1, 2)
        homog = np.column_stack([pts, np.ones(pts.shape[0])]) @ self.image_to_ground.T
        w = homog[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            ground = homog[:, :2] / w[:, None]
        # A pinhole ray that points above the horizon hits the plane behind the camera (w <= 0).
        if self.camera_matrix is not None:
            ground[w <= 0] = np.nan
        return ground


def bottom_centres(boxes: np.ndarray, angles: np.ndarray | None = None) -> np.ndarray:
    """Bottom-centre point of each box (``x1, y1, x2, y2``; rotated by ``angles`` about its centre)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    half_h = (b[:, 3] - b[:, 1]) / 2
    if angles is None:
        return np.column_stack([cx, cy + half_h])
    a = np.asarray(angles, dtype=np.float64)
    # The box's "down" axis (0, 1) rotated by the angle (image y grows downwards).
    return np.column_stack([cx - np.sin(a) * half_h, cy + np.cos(a) * half_h])
