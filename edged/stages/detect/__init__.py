"""Object detection: TFLite runtime, output decoders, and the detector stage."""

from edged.stages.detect.detector import Detector
from edged.stages.detect.runtime import ModelError, TFLiteModel
from edged.stages.detect.stage import DetectStage

__all__ = ["DetectStage", "Detector", "ModelError", "TFLiteModel"]
