"""The privacy stage: de-identify the frame, seal each category's original crops (pure, no I/O).

Per frame: :func:`edged.stages.privacy.deid.sensitive_regions` picks the regions (sensitive tracks, matched
or predicted, plus sensitive detections not yet tracked), the de-identifier (track-stable by default)
hides them, and one sealed record per category goes out as a ``sensitive`` envelope to
``func.<category>``. Pixels where regions of several categories overlap are masked out of each
category's crop and carried, in nested sealed boxes that need every one of those categories' keys, in
each of their records. The original crops exist only as in-memory PNG bytes inside the sealed record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edged.config import PrivacyConfig
from edged.core.classes import class_id
from edged.core.keys import PrivacyKeys
from edged.core.types import Detections, Frame, TrackedObjects
from edged.link import wire
from edged.link.destinations import destination
from edged.link.sealing import seal, seal_overlap
from edged.stages.pipeline import FrameWork
from edged.stages.privacy.deid import (
    Deidentifier,
    FrameDeidentifier,
    SensitiveRegions,
    sensitive_regions,
    within_unconfident_budget,
)
from edged.stages.privacy.records import attach_overlaps, build_overlaps, build_records
from edged.stages.privacy.stabilize import StableDeidentifier

SENSITIVE_KIND = "sensitive"


def make_deidentifier(config: PrivacyConfig) -> Deidentifier:
    """The de-identifier the config asks for: track-stable (``stabilize``) or frame by frame."""
    edge_fill = tuple(class_id(c) for c in config.edge_fill)
    if config.stabilize:
        return StableDeidentifier(
            config.method, config.margin, config.cells, config.min_cell_px,
            config.grid_px, config.shrink_per_frame, config.fill_update, config.redraw_levels, config.shape,
            config.fit_from_px, edge_fill,
        )
    return FrameDeidentifier(config.method, config.margin, config.cells, config.min_cell_px, config.shape, edge_fill)


@dataclass(slots=True)
class PrivacyOutput:
    """What the stage made of one frame."""

    deidentified: np.ndarray
    regions: SensitiveRegions
    rects: np.ndarray
    """``int32 (N, 4)`` de-identified rectangles (``x1, y1, x2, y2``, exclusive ends), row ``i`` for
    region ``i``."""
    envelopes: list[wire.Envelope] = field(default_factory=list)
    """One ``sensitive`` envelope per category with regions (sealed record in ``body``)."""


class PrivacyStage:
    """Pipeline stage ``privacy``: fills ``work.deidentified``, appends sealed records to ``work.outgoing``.

    ``keys`` (from :func:`edged.core.keys.check_keys`) is required when ``config.categories`` is not
    empty. Also sets ``work.sensitive_rects`` (the de-identified rectangles, for the health
    check), ``work.sensitive_regions`` and ``work.sealed_records`` (counts).
    """

    name = "privacy"

    def __init__(self, config: PrivacyConfig, keys: PrivacyKeys | None, device_id: str = "") -> None:
        missing = [c for c in config.categories if keys is None or c not in keys.recipients]
        if missing:
            raise ValueError(
                f"privacy stage: no recipient key for categor{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(missing)} (load keys with edged.core.keys.check_keys)"
            )
        self.config = config
        self.keys = keys
        self.device_id = device_id
        self.deidentifier = make_deidentifier(config)
        self.categories = tuple(config.categories)

    def process(
        self, frame: Frame, tracks: TrackedObjects | None, detections: Detections | None
    ) -> PrivacyOutput:
        """De-identify one frame and seal its crops (frames must come in capture order)."""
        regions = sensitive_regions(tracks, detections, self.config.min_score)
        h, w = frame.pixels.shape[:2]
        regions = within_unconfident_budget(regions, w, h, self.config.margin, self.config.confident_score,
                                            self.config.unconfident_max_share)
        result = self.deidentifier(frame.pixels, regions)
        envelopes: list[wire.Envelope] = []
        if len(regions) and self.categories:
            assert self.keys is not None
            meta = frame.meta
            records = build_records(meta, frame.pixels, result, regions, self.categories, self.device_id)
            overlaps = build_overlaps(meta, frame.pixels, result, regions, self.categories)
            records = attach_overlaps(records, [seal_overlap(o, self.keys.recipients) for o in overlaps])
            for category, record in records.items():
                sealed = seal(record, self.keys.recipients[category], self.keys.signing_key)
                envelopes.append(
                    wire.make(
                        SENSITIVE_KIND, destination(category), "sensitive", sealed,
                        video_id=meta.video_id, image_id=meta.image_id, created=meta.timestamp,
                        device=self.device_id,
                    )
                )
        return PrivacyOutput(result.image, regions, result.rects, envelopes)

    def __call__(self, work: FrameWork) -> None:
        out = self.process(work.frame, work.tracks, work.detections)
        work.deidentified = out.deidentified
        work.outgoing.extend(out.envelopes)
        work.sensitive_rects = out.rects
        work.sensitive_regions = len(out.regions)
        work.sealed_records = len(out.envelopes)
