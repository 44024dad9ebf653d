"""A model's implausibly tall boxes are dropped (``max_box_fraction``), on a real photograph."""

from __future__ import annotations

import cv2
import msgspec
import numpy as np
import pytest

from edged.config import DetectConfig, default_models
from edged.stages.detect.detector import Detector

skimage_data = pytest.importorskip("skimage.data")


def face_detector(max_box_fraction: float) -> Detector:
    face = next(m for m in default_models() if m.name == "face")
    face = msgspec.structs.replace(face, crops_from=[], full_frame=True, max_box_fraction=max_box_fraction)
    return Detector.from_config(DetectConfig(models=[face]))


def test_tall_faces_dropped_only_above_the_fraction() -> None:
    bgr = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)  # 512x512, face ~ 1/3 of the height
    found = face_detector(1.0).detect(bgr)
    strong = found.select(found.scores >= 0.5)
    assert len(strong) >= 1
    tallest = float((strong.boxes[:, 3] - strong.boxes[:, 1]).max()) / bgr.shape[0]
    kept = face_detector(tallest + 0.05).detect(bgr)
    dropped = face_detector(tallest - 0.05).detect(bgr)
    heights = lambda d: (d.boxes[:, 3] - d.boxes[:, 1]) / bgr.shape[0]  # noqa: E731
    assert np.isclose(heights(kept.select(kept.scores >= 0.5)).max(), tallest)
    assert (heights(dropped) <= tallest - 0.05).all()
    assert len(dropped.select(dropped.scores >= 0.5)) < len(strong)
