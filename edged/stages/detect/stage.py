"""Stage ``detect``: runs the detector on each frame (pure, no I/O)."""

from __future__ import annotations

from edged.stages.detect.detector import Detector
from edged.stages.pipeline import FrameWork


class DetectStage:
    """Fills ``work.detections`` from ``work.frame.pixels``."""

    name = "detect"

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def __call__(self, work: FrameWork) -> None:
        work.detections = self.detector.detect(work.frame.pixels)
