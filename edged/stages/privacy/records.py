"""Building sensitive records from a frame: per category, the original crops and their mapping.

One record per image and sensitive category. Crops are PNG-encoded into ``bytes`` in memory; the
records go to :func:`edged.link.records.seal` and only the sealed container leaves the stage, so no
plaintext is written anywhere.

Where regions of two categories overlap (a face behind a windscreen next to its plate), each
category's crop holds the de-identified pixels, not the original ones, where it lies in a region of
another category, and lists those rectangles as ``masked``; the overlap's original pixels are built
here (:func:`build_overlaps`) and travel in nested sealed boxes (:func:`edged.link.records.seal_overlap`),
so only someone holding every one of those categories' keys can open them. The format itself is
:mod:`edged.link.records`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from itertools import combinations, product

import cv2
import numpy as np

from edged.core.classes import CLASS_NAMES
from edged.core.types import FrameMeta
from edged.link.crops import encode_png, intersect, masked_pixels
from edged.link.records import OverlapPatch, OverlapPixels, RecordRegion, Rect, SealedOverlap, SensitiveRecord
from edged.stages.privacy.deid import DeidResult, SensitiveRegions

SIG_CELLS = 8
"""The de-identification signature of a region is its de-identified content shrunk to at most
8 x 8 cells (robust to JPEG re-encoding, meaningless without the image)."""


# --------------------------------------------------------------------------------------- building
def deid_signature(deidentified: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    """The de-identified content of ``rect`` shrunk to at most 8 x 8 cells (uint8 ``(r, c, C)``)."""
    x1, y1, x2, y2 = rect
    patch = deidentified[y1:y2, x1:x2]
    rows, cols = min(SIG_CELLS, y2 - y1), min(SIG_CELLS, x2 - x1)
    small = cv2.resize(patch.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8).reshape(rows, cols, -1)


def masked_crop(original: np.ndarray, deidentified: np.ndarray, rect: Rect, masked: tuple[Rect, ...]) -> np.ndarray:
    """The original pixels of ``rect``, its ``masked`` rectangles (crop coordinates) replaced by the
    de-identified image's pixels there (what every receiver of that image sees anyway)."""
    x, y, w, h = rect
    crop = np.array(original[y : y + h, x : x + w], copy=True)
    hide = masked_pixels(w, h, masked)
    crop[hide] = deidentified[y : y + h, x : x + w][hide]
    return crop


def region_rects(result: DeidResult, regions: SensitiveRegions) -> list[tuple[int, str, Rect]]:
    """``(index, category, rect)`` of every region whose de-identified rectangle is not empty."""
    out = []
    for i in range(len(regions)):
        x1, y1, x2, y2 = (int(v) for v in result.rects[i])
        if x2 > x1 and y2 > y1:
            out.append((i, CLASS_NAMES[int(regions.class_ids[i])], (x1, y1, x2 - x1, y2 - y1)))
    return out


def masks_within(rect: Rect, others: Iterable[Rect]) -> tuple[Rect, ...]:
    """The parts of ``others`` that lie in ``rect``, in ``rect``'s coordinates."""
    out = []
    for other in others:
        part = intersect(rect, other)
        if part is not None:
            out.append((part[0] - rect[0], part[1] - rect[1], part[2], part[3]))
    return tuple(out)


def build_records(
    meta: FrameMeta,
    original: np.ndarray,
    result: DeidResult,
    regions: SensitiveRegions,
    categories: list[str] | tuple[str, ...] | frozenset[str],
    device: str = "",
) -> dict[str, SensitiveRecord]:
    """One record per listed category present in the frame: per region, the original pixels of the
    rectangle ``result`` replaced, less those inside a region of another category, and its mapping."""
    rects = region_rects(result, regions)
    by_category: dict[str, list[RecordRegion]] = {}
    for i, name, rect in rects:
        if name not in categories:
            continue
        masked = masks_within(rect, (r for _, c, r in rects if c != name))
        x, y, w, h = rect
        sig = deid_signature(result.image, (x, y, x + w, y + h))
        by_category.setdefault(name, []).append(
            RecordRegion(
                track_id=int(regions.track_ids[i]),
                object_type=name,
                x=x, y=y, w=w, h=h,
                angle=float(regions.angles[i]),
                box=tuple(float(v) for v in regions.boxes[i]),  # type: ignore[arg-type]
                score=float(regions.scores[i]),
                detected=bool(regions.detected[i]),
                crop=encode_png(masked_crop(original, result.image, rect, masked)),
                deid_sig=sig.tobytes(),
                deid_sig_shape=(int(sig.shape[0]), int(sig.shape[1]), int(sig.shape[2])),
                masked=masked,
            )
        )
    pos = meta.position
    return {
        cat: SensitiveRecord(
            image_id=meta.image_id,
            video_id=meta.video_id,
            frame_index=int(meta.frame_index),
            timestamp=float(meta.timestamp),
            category=cat,
            width=int(original.shape[1]),
            height=int(original.shape[0]),
            device=device,
            regions=tuple(rs),
            position=(float(pos.lat), float(pos.lon), float(pos.alt)),
        )
        for cat, rs in by_category.items()
    }


def overlap_patches(
    original: np.ndarray, deidentified: np.ndarray, rects: list[tuple[int, str, Rect]], categories: tuple[str, ...]
) -> tuple[OverlapPatch, ...]:
    """One patch per choice of one region of each of ``categories`` whose rectangles all overlap:
    the original pixels there, less those that also lie in a region of any other category."""
    by_cat = [[r for _, c, r in rects if c == cat] for cat in categories]
    others = [r for _, c, r in rects if c not in categories]
    patches = []
    for pick in product(*by_cat):
        area: Rect | None = pick[0]
        for r in pick[1:]:
            area = intersect(area, r) if area is not None else None
        if area is None:
            continue
        masked = masks_within(area, others)
        if masked_pixels(area[2], area[3], masked).all():
            continue
        crop = encode_png(masked_crop(original, deidentified, area, masked))
        patches.append(OverlapPatch(area[0], area[1], area[2], area[3], crop, masked))
    return tuple(patches)


def build_overlaps(
    meta: FrameMeta,
    original: np.ndarray,
    result: DeidResult,
    regions: SensitiveRegions,
    categories: list[str] | tuple[str, ...] | frozenset[str],
) -> list[OverlapPixels]:
    """Per set of two or more listed categories whose regions overlap, the original pixels covered
    by exactly those categories (pixels also in a region of an unlisted category go nowhere)."""
    rects = region_rects(result, regions)
    present = sorted({c for _, c, _ in rects if c in categories})
    out = []
    for size in range(2, len(present) + 1):
        for cats in combinations(present, size):
            patches = overlap_patches(original, result.image, rects, cats)
            if patches:
                out.append(OverlapPixels(meta.image_id, cats, patches))
    return out


def attach_overlaps(
    records: dict[str, SensitiveRecord], overlaps: Iterable[SealedOverlap]
) -> dict[str, SensitiveRecord]:
    """The records with every sealed overlap added to the record of each of its categories."""
    sealed = tuple(overlaps)
    return {
        cat: replace(rec, overlaps=tuple(o for o in sealed if cat in o.categories))
        for cat, rec in records.items()
    }
