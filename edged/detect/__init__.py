"""Object detection: TFLite runtime, output decoders, and the detector stage."""

from edged.detect.detector import Detector, DetectStage
from edged.detect.runtime import ModelError, TFLiteModel

__all__ = ["DetectStage", "Detector", "ModelError", "TFLiteModel"]
