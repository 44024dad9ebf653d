"""The real-footage evaluation (``tools.eval.real``), short: two committed street frames, one portrait."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import DetectConfig, ModelConfig, default_models
from edged.core.types import Detections
from edged.stages.detect.detector import Detector, Region, fits_crop
from tools.eval import real as eval_real

REAL = Path(__file__).resolve().parent / "data" / "real"


class FloatCenterFace:
    """Stand-in reference: the shipped float CenterFace (the real reference is its ONNX at native size)."""

    def __init__(self) -> None:
        self.detector = Detector.from_config(DetectConfig(models=[ModelConfig(
            name="ref", file="models/face_centerface_640x384_float.tflite", layout="centerface",
            input_size=(640, 384), labels=["face"], score_threshold=0.5, nms_iou=0.3)]))

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        return self.detector.detect(bgr).boxes


@pytest.mark.slow
def test_clip_figures_on_real_frames() -> None:
    from skimage import data

    street = [cv2.imread(str(REAL / n)) for n in ("vtest_0000.jpg", "vtest_0300.jpg")]
    chain = eval_real.Chain(default_models())
    fig = eval_real.measure_clip("street", street, chain, FloatCenterFace())
    assert fig.frames == 2 and fig.size == (768, 576)
    assert 0.0 < np.mean(fig.changed) < 0.08  # a few faces covered, not the frame
    assert min(fig.ssim) > 0.9
    portrait = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    fig = eval_real.measure_clip("portrait", [portrait, portrait], chain, FloatCenterFace())
    assert fig.reference_faces == 2 and fig.still_found == 0  # found in the original, gone after
    assert fig.sealed_bytes > 0
    assert fig.detected == 2 and "portrait (512x512, 2 frames) | 2 | 2 (100.0%) | 0 (0.0%)" in fig.row()


def test_matching_and_crop_fit() -> None:
    a = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    assert eval_real.matched(a, np.array([[1, 1, 11, 11]], np.float32)).tolist() == [True, False]
    assert eval_real.matched(a, np.zeros((0, 4), np.float32)).tolist() == [False, False]
    dets = Detections(np.array([[0, 0, 30, 30], [0, 0, 70, 40]], np.float32), np.array([0.9, 0.9], np.float32),
                      np.zeros(2, np.int16), np.zeros(2, np.float32))
    assert len(fits_crop(dets, Region(0, 0, 100, 100), 0.6)) == 1
    assert len(fits_crop(dets, Region(0, 0, 100, 100), 1.0)) == 2
