"""Block stability index and the processed-vs-raw distortion check."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from edged.config import ConfigError, HealthConfig, from_dict
from edged.stages.health.checks import C1, C2, BlockGrid, HealthChecker, block_stability

W, H = 320, 240


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (W, H), interpolation=cv2.INTER_AREA)


def ssim_block(x: np.ndarray, y: np.ndarray) -> float:
    """Reference: the index written out for one block (float64, population statistics)."""
    x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    return (2 * mx * my + C1) * (2 * cov + C2) / ((mx**2 + my**2 + C1) * (x.var() + y.var() + C2))


def test_index_matches_its_definition_per_block(photo: np.ndarray) -> None:
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    other = cv2.GaussianBlur(grey, (0, 0), 2.0)
    other[:40, :70] = 255 - other[:40, :70]
    tau = block_stability(grey, other, block=32)
    assert tau.shape == (8, 10)  # 240/32 = 7.5 -> a partial last row
    for r in range(8):
        for c in range(10):
            want = ssim_block(grey[32 * r : 32 * r + 32, 32 * c : 32 * c + 32], other[32 * r : 32 * r + 32, 32 * c : 32 * c + 32])
            assert tau[r, c] == pytest.approx(want, abs=1e-4)


def test_identical_is_exactly_one_and_changes_lower_it(photo: np.ndarray) -> None:
    assert np.all(block_stability(photo, photo.copy(), 32, 2) == 1.0)
    noisy = photo.copy()
    noisy[64:96, 96:128] = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    tau = block_stability(photo, noisy, 32, 2)
    assert tau[2, 3] < 0.3
    assert np.all(np.delete(tau.ravel(), 2 * 10 + 3) == 1.0)
    darker = (photo * 0.6).astype(np.uint8)
    assert np.median(block_stability(photo, darker, 32, 2)) < 0.95  # luminance term


def test_region_mask_covers_touched_blocks() -> None:
    grid = BlockGrid(W, H, 32, 2)
    mask = grid.region_mask(np.array([[40, 10, 70, 33], [310, 230, 400, 300]], np.float32))
    assert mask.shape == (8, 10)
    assert set(zip(*np.nonzero(mask), strict=True)) == {(0, 1), (0, 2), (1, 1), (1, 2), (7, 9)}
    assert grid.region_mask(np.array([[40, 10, 63, 31]]), margin=2.0)[1, 2]
    assert not grid.region_mask(None).any()


def test_deidentified_regions_pass_leaks_and_misplacement_are_flagged(photo: np.ndarray) -> None:
    checker = HealthChecker(HealthConfig(), W, H)
    face = np.array([[170, 40, 250, 130]], np.float32)
    x1, y1, x2, y2 = face[0].astype(int)
    blurred = photo.copy()
    blurred[y1:y2, x1:x2] = cv2.GaussianBlur(blurred[y1:y2, x1:x2], (0, 0), 12)
    ok = checker.check(photo, blurred, face, frame_index=0)
    assert not ok.distorted and ok.distortion_index == 1.0 and ok.distorted_blocks == 0

    unexplained = checker.check(photo, blurred, None, frame_index=1)  # regions not declared
    assert unexplained.distorted and unexplained.distortion_index < 0.9
    assert [e.state for e in unexplained.events] == ["start"] and unexplained.events[0].kind == "distortion"

    leak = photo.copy()  # blur grown 40 px beyond the declared region
    leak[y1:y2 + 40, x1 - 40 : x2] = cv2.GaussianBlur(leak[y1:y2 + 40, x1 - 40 : x2], (0, 0), 12)
    r = checker.check(photo, leak, face, frame_index=2)
    assert r.distorted and r.distorted_blocks >= 2

    jpeg = cv2.imdecode(cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 50])[1], cv2.IMREAD_COLOR)
    assert not checker.check(photo, jpeg, face, frame_index=3).distorted  # encoding alone is no distortion

    with pytest.raises(ValueError, match="expects 320x240"):
        checker.check(photo, cv2.resize(photo, (160, 120)), face)


def test_config_rejects_block_not_multiple_of_downscale() -> None:
    with pytest.raises(ConfigError, match="health: block_size 30 must be a multiple of downscale 4"):
        from_dict({"health": {"block_size": 30, "downscale": 4}})
    assert from_dict({"health": {"block_size": 16, "downscale": 1}}).health.block_size == 16
