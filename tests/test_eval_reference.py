"""The independent de-identification yardstick (``tools.eval.reference``): detail measure, box logic, MTCNN on a real face."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from tools.eval import reference as ref

BOX = (40, 30, 120, 110)


def textured(seed: int = 0, shape: tuple[int, int] = (160, 200)) -> np.ndarray:
    """A BGR image full of fine detail (smoothed noise plus edges)."""
    rng = np.random.default_rng(seed)
    grey = cv2.GaussianBlur(rng.uniform(0, 255, shape).astype(np.float32), (0, 0), 0.8)
    grey[:, ::7] = 255
    return cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def test_detail_kept_untouched_is_one() -> None:
    img = textured()
    assert ref.detail_kept(img, img.copy(), BOX) == pytest.approx(1.0, abs=1e-6)


def test_detail_kept_hard_blur_is_near_zero() -> None:
    img = textured()
    out = img.copy()
    x1, y1, x2, y2 = BOX
    out[y1:y2, x1:x2] = cv2.GaussianBlur(img, (0, 0), 8)[y1:y2, x1:x2]
    assert ref.detail_kept(img, out, BOX) < 0.05


def test_detail_kept_filled_or_noised_is_near_zero() -> None:
    img = textured()
    x1, y1, x2, y2 = BOX
    filled = img.copy()
    filled[y1:y2, x1:x2] = 128
    noised = img.copy()
    noised[y1:y2, x1:x2] = np.random.default_rng(7).integers(0, 256, (y2 - y1, x2 - x1, 1), np.uint8)
    assert ref.detail_kept(img, filled, BOX) < 0.05
    assert ref.detail_kept(img, noised, BOX) < 0.1


def test_detail_kept_half_covered_is_in_between() -> None:
    img = textured()
    out = img.copy()
    x1, y1, x2, y2 = BOX
    out[y1:y2, x1:(x1 + x2) // 2] = 128
    assert 0.35 < ref.detail_kept(img, out, BOX) < 0.65


def test_detail_kept_faded_detail_counts_as_partly_lost() -> None:
    img = textured()
    x1, y1, x2, y2 = BOX
    out = img.copy()
    mean = img[y1:y2, x1:x2].astype(np.float32).mean()
    out[y1:y2, x1:x2] = (mean + 0.3 * (img[y1:y2, x1:x2].astype(np.float32) - mean)).astype(np.uint8)
    assert 0.2 < ref.detail_kept(img, out, BOX) < 0.4


def test_detail_kept_undefined_cases_are_nan() -> None:
    flat = np.full((100, 100, 3), 90, np.uint8)
    assert math.isnan(ref.detail_kept(flat, flat, (10, 10, 50, 50)))
    img = textured()
    assert math.isnan(ref.detail_kept(img, img, (500, 500, 600, 600)))


def test_nms_and_tiles() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [2, 2, 6, 6]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert ref.nms(boxes, scores, 0.5).tolist() == [0, 2, 3]
    assert ref.nms(boxes, scores, 0.5, by_min=True).tolist() == [0, 2]
    tiles = ref.PlateReference.tiles(1440, 2560, 640)
    covered = np.zeros((1440, 2560), bool)
    for x, y in tiles:
        covered[y:y + 640, x:x + 640] = True
    assert covered.all()
    xs = sorted({x for x, _ in tiles})
    assert all(b - a <= 480 for a, b in zip(xs, xs[1:]))


class FixedReference:
    """A stand-in reference that finds the same boxes on any image."""

    NAME = "fixed boxes"

    def __init__(self, boxes: list[tuple[float, float, float, float]]) -> None:
        self.boxes = np.array(boxes, np.float32).reshape(-1, 4)

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        return self.boxes


def test_judge_reports_found_and_detail_per_box() -> None:
    img = textured()
    out = img.copy()
    out[30:110, 40:120] = 128
    boxes = np.array([BOX, (130, 20, 190, 80)], np.float32)
    verdicts = ref.judge(FixedReference([(135, 25, 190, 80)]), img, out, boxes)
    assert [v.still_found for v in verdicts] == [False, True]
    assert verdicts[0].detail_kept < 0.05
    assert verdicts[1].detail_kept == pytest.approx(1.0, abs=1e-6)
    assert ref.judge(FixedReference([]), img, out, np.zeros((0, 4))) == []


def test_mtcnn_pyramid_reaches_below_native() -> None:
    faces = ref.FaceReference.__new__(ref.FaceReference)
    faces.min_face, faces.factor = 10.0, 0.709
    scales = faces.scales(720, 1280)
    assert scales[0] == pytest.approx(1.2)
    assert 720 * scales[-1] >= 12 > 720 * scales[-1] * 0.709


def test_face_reference_on_real_face() -> None:
    """MTCNN finds the astronaut's face (box drawn by eye) and no longer finds it once blurred; needs the cached model."""
    from skimage import data

    try:
        faces = ref.FaceReference(fetch=False)
    except ref.ReferenceError as exc:
        pytest.skip(f"MTCNN reference not available here ({exc})")
    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    truth = np.array([[170, 50, 270, 180]], np.float32)
    assert ref.judge(faces, img, img, truth)[0].still_found
    out = img.copy()
    out[50:180, 170:270] = cv2.GaussianBlur(img, (0, 0), 12)[50:180, 170:270]
    verdict = ref.judge(faces, img, out, truth)[0]
    assert not verdict.still_found
    assert verdict.detail_kept < 0.1
