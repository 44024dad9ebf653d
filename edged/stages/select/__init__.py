"""Best-image selection (per frame and track, the image to upload): rules, selector and upload packages.

Main entry points: :class:`edged.stages.select.selector.BestImageSelector` (``select(frame_observations)``)
and :class:`edged.stages.select.stage.SelectStage` for the pipeline. Sending (the immediate and cached
queues, the cached rate) is :mod:`edged.link.uplink`'s job, over the outbox.
"""

from edged.stages.select.package import UploadPackage
from edged.stages.select.rules import area_ratio, box_area, is_better, min_edge_distance, qualifies, sends_immediately
from edged.stages.select.selector import BestImage, BestImageSelector, Selection

__all__ = [
    "BestImage",
    "BestImageSelector",
    "Selection",
    "UploadPackage",
    "area_ratio",
    "box_area",
    "is_better",
    "min_edge_distance",
    "qualifies",
    "sends_immediately",
]
