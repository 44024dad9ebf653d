"""Short version of tools/eval/privacy.py: the default face detector stops firing on de-identified
faces of the fake scene, SSIM stays >= 0.50 per frame, and the H.264 figure favours track-stable."""

from __future__ import annotations

import numpy as np
import pytest

from edged.config import PrivacyConfig
from tools.eval import privacy as ev


@pytest.fixture(scope="module")
def frames():
    return ev.scene(40, 7, people_per_minute=60.0, cars_per_minute=40.0)[::2]


@pytest.fixture(scope="module")
def detector():
    return ev.FaceDetector()


@pytest.mark.slow
def test_face_detector_no_longer_fires_on_deidentified_faces(frames, detector) -> None:
    lo, hi = ev.measure_scene(frames, detector, PrivacyConfig())
    assert lo.gt >= 15
    assert hi.found_orig >= 0.8 * hi.gt, "the detector must see the faces in the originals for this to mean anything"
    assert lo.found_deid <= 0.02 * lo.gt, f"{lo.found_deid} of {lo.gt} faces still found (any score)"
    assert min(lo.ssim) >= 0.50


@pytest.mark.slow
def test_weak_deidentification_is_caught(frames, detector) -> None:
    """The same measure fails a de-identification too weak to hide faces (the test can fail)."""
    weak = PrivacyConfig(method="pixelate", cells=64, min_cell_px=1, margin=0.0)
    lo, _ = ev.measure_scene(frames[10:], detector, weak)
    assert lo.found_orig >= 5
    assert lo.found_deid >= 0.5 * lo.found_orig


@pytest.mark.slow
def test_track_stable_regions_code_smaller_than_per_frame_blur(frames) -> None:
    h = ev.measure_h264(frames, PrivacyConfig(), seed=7)
    base, stable = h["per-frame blur"], h["track-stable (default)"]
    assert stable["regions"] < base["regions"]
    assert np.isfinite(stable["area"]) and stable["area"] >= base["area"]  # the stable box is never smaller
