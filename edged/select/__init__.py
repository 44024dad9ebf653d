"""Best-image selection (SPEC S4): rules, selector, upload packages and the send policy.

Main entry points: :class:`edged.select.selector.BestImageSelector` (``select(frame_observations)``),
:class:`edged.select.stage.SelectStage` for the pipeline, and :class:`CachedRate` /
:class:`UploadQueue` for sending.
"""

from edged.select.package import UploadPackage
from edged.select.rules import area_ratio, box_area, is_better, min_edge_distance, qualifies, sends_immediately
from edged.select.scheduler import CachedRate, UploadQueue
from edged.select.selector import BestImage, BestImageSelector, Selection

__all__ = [
    "BestImage",
    "BestImageSelector",
    "CachedRate",
    "Selection",
    "UploadPackage",
    "UploadQueue",
    "area_ratio",
    "box_area",
    "is_better",
    "min_edge_distance",
    "qualifies",
    "sends_immediately",
]
