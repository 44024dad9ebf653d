"""Ground points: homography and pinhole calibrations against OpenCV's own projection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edged.config import CalibrationConfig, ConfigError, from_dict
from edged.stages.track.calibration import CalibrationError, GroundProjector, bottom_centres, camera_rotation

W, H = 1280, 720


def project_with_opencv(cfg: CalibrationConfig, ground_xy: np.ndarray, dist: np.ndarray | None = None) -> np.ndarray:
    """Image points of ground points (z = 0) via cv2.projectPoints, from the same pose."""
    rot = camera_rotation(cfg.pitch_deg, cfg.yaw_deg, cfg.roll_deg)  # camera -> world
    world_to_cam = rot.T
    rvec, _ = cv2.Rodrigues(world_to_cam)
    tvec = -world_to_cam @ np.array([0.0, 0.0, cfg.height_m])
    k = np.array([[cfg.fx, 0, (W - 1) / 2], [0, cfg.fy, (H - 1) / 2], [0, 0, 1]])
    pts3 = np.column_stack([ground_xy, np.zeros(len(ground_xy))])
    img, _ = cv2.projectPoints(pts3, rvec, tvec, k, dist if dist is not None else np.zeros(5))
    return img.reshape(-1, 2)


@pytest.mark.parametrize("pitch, yaw, roll", [(15, 0, 0), (30, 45, 0), (10, -120, 3)])
def test_pinhole_ground_points_invert_opencv_projection(pitch, yaw, roll):
    cfg = CalibrationConfig(model="pinhole", fx=900, fy=900, height_m=7.0, pitch_deg=pitch, yaw_deg=yaw, roll_deg=roll)
    bearing = np.radians(yaw)
    fwd, right = np.array([np.sin(bearing), np.cos(bearing)]), np.array([np.cos(bearing), -np.sin(bearing)])
    ground = np.array([fwd * d + right * s for d in (15, 30, 60) for s in (-4, 0, 5)])
    image = project_with_opencv(cfg, ground)
    back = GroundProjector.from_config(cfg, W, H).to_ground(image)
    np.testing.assert_allclose(back, ground, atol=1e-6 * 60)


def test_camera_looking_north_sees_farther_points_higher_in_the_image():
    cfg = CalibrationConfig(model="pinhole", fx=1000, fy=1000, height_m=6.0, pitch_deg=20)
    image = project_with_opencv(cfg, np.array([[0.0, 10.0], [0.0, 40.0], [3.0, 10.0]]))
    assert image[1, 1] < image[0, 1]  # farther is higher (smaller v)
    assert image[2, 0] > image[0, 0]  # east is to the right
    # The optical axis hits the ground at height / tan(pitch), at the image centre.
    centre = GroundProjector.from_config(cfg, W, H).to_ground(np.array([[(W - 1) / 2, (H - 1) / 2]]))
    np.testing.assert_allclose(centre[0], [0.0, 6.0 / np.tan(np.radians(20))], atol=1e-9)


def test_pinhole_with_distortion_matches_opencv():
    dist = np.array([-0.12, 0.03, 0.001, -0.0005, 0.0])
    cfg = CalibrationConfig(model="pinhole", fx=950, fy=950, height_m=5.0, pitch_deg=25, distortion=dist.tolist())
    ground = np.array([[x, y] for x in (-5, 0, 4) for y in (8, 20)])
    image = project_with_opencv(cfg, ground, dist)
    back = GroundProjector.from_config(cfg, W, H).to_ground(image)
    np.testing.assert_allclose(back, ground, atol=0.02)


def test_points_above_the_horizon_have_no_ground_point():
    cfg = CalibrationConfig(model="pinhole", fx=1000, fy=1000, height_m=6.0, pitch_deg=5)
    out = GroundProjector.from_config(cfg, W, H).to_ground(np.array([[640, 0], [640, 700]]))
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_homography_from_surveyed_markings():
    image_pts = np.array([[300, 700], [980, 700], [560, 420], [720, 420]], np.float64)
    ground_pts = np.array([[-3.5, 5.0], [3.5, 5.0], [-3.5, 40.0], [3.5, 40.0]], np.float64)
    hmat, _ = cv2.findHomography(image_pts, ground_pts)
    cfg = from_dict({"calibration": {"model": "homography", "homography": hmat.tolist()}}).calibration
    out = GroundProjector.from_config(cfg, W, H).to_ground(image_pts)
    np.testing.assert_allclose(out, ground_pts, atol=1e-6)


def test_uncalibrated_gives_nan():
    out = GroundProjector.from_config(CalibrationConfig(), W, H).to_ground(np.array([[1.0, 2.0]]))
    assert out.shape == (1, 2) and np.isnan(out).all()


def test_bad_calibrations_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match="calibration: homography must be 3 rows of 3 numbers"):
        from_dict({"calibration": {"homography": [[1.0, 0.0], [0.0, 1.0]]}})
    with pytest.raises(ConfigError, match="calibration.pitch_deg"):
        from_dict({"calibration": {"model": "pinhole", "pitch_deg": 0.0}})
    singular = CalibrationConfig(model="homography", homography=[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]])
    with pytest.raises(CalibrationError, match="singular"):
        GroundProjector.from_config(singular, W, H)


def test_bottom_centre_of_axis_aligned_and_rotated_boxes():
    boxes = np.array([[10, 20, 50, 100], [10, 20, 50, 100]], np.float32)
    out = bottom_centres(boxes, np.array([0.0, np.pi / 2]))
    np.testing.assert_allclose(out[0], [30, 100])
    # Rotated by 90 degrees (clockwise in image coordinates) the box's "bottom" points left.
    np.testing.assert_allclose(out[1], [30 - 40, 60], atol=1e-9)
