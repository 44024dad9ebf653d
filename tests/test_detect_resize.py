"""Model-input resizing: anti-aliased like INTER_AREA, and boxes map back to the frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edged.stages.detect.detector import fit_size, letterbox


def photo() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)  # 512x512


@pytest.mark.parametrize("side", [150, 300, 450, 511])
def test_fit_size_is_close_to_inter_area(side):
    crop = photo()[:side, :side]
    fast, used_w, used_h = fit_size(crop, (128, 128))
    area = cv2.resize(crop[:used_h, :used_w], (128, 128), interpolation=cv2.INTER_AREA)
    assert fast.shape == (128, 128, 3)
    assert np.abs(fast.astype(int) - area).mean() < 2.0
    nearest = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_NEAREST)  # aliased, for scale
    assert np.abs(fast.astype(int) - area).mean() < 0.5 * np.abs(nearest.astype(int) - area).mean()


def test_exact_halving_is_inter_area_itself():
    frame = cv2.resize(photo(), (1280, 720))
    fast, used_w, used_h = fit_size(frame, (640, 360))
    assert (used_w, used_h) == (1280, 720)
    np.testing.assert_array_equal(fast, cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA))


def test_enlarging_is_bilinear():
    small = photo()[:64, :64]
    fast, used_w, used_h = fit_size(small, (128, 128))
    assert (used_w, used_h) == (64, 64)
    np.testing.assert_array_equal(fast, cv2.resize(small, (128, 128), interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize(("w", "h"), [(601, 301), (515, 515), (333, 777), (1031, 400)])
def test_letterboxed_pixels_map_back_to_the_image(w, h):
    image = np.zeros((h, w, 3), np.uint8)
    x0, y0 = int(w * 0.85), int(h * 0.7)
    image[y0 : y0 + 24, x0 : x0 + 24] = 255  # a block whose centre is at (x0 + 12, y0 + 12)
    canvas, sx, sy, px, py = letterbox(image, (128, 128))
    ys, xs = np.nonzero(canvas[..., 0].astype(float) > 0)
    weights = canvas[ys, xs, 0].astype(float)
    cx, cy = (np.average(xs, weights=weights) + 0.5 - px) / sx, (np.average(ys, weights=weights) + 0.5 - py) / sy
    assert abs(cx - (x0 + 12)) < 1.0 and abs(cy - (y0 + 12)) < 1.0, (cx, cy)
