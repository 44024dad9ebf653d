"""Privacy split: de-identify outgoing images, seal the original crops for the functional
platforms. Stages here are pure (no I/O); keys are loaded by :mod:`edged.core.keys`, the sealed-record
format is :mod:`edged.link.records`."""

from edged.stages.privacy.deid import FrameDeidentifier, SensitiveRegions, sensitive_regions
from edged.stages.privacy.stabilize import StableDeidentifier
from edged.stages.privacy.stage import PrivacyOutput, PrivacyStage, make_deidentifier

__all__ = [
    "FrameDeidentifier",
    "PrivacyOutput",
    "PrivacyStage",
    "SensitiveRegions",
    "StableDeidentifier",
    "make_deidentifier",
    "sensitive_regions",
]
