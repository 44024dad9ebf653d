"""De-identification of sensitive regions: which regions, how far grown, and how hidden.

Pure functions on numpy arrays. :func:`sensitive_regions` picks the regions of one frame from the
tracker (matched and predicted boxes) and from sensitive detections the tracker has not confirmed
yet; :func:`grow_boxes` pushes each box out by the margin; :class:`FrameDeidentifier` hides each
region on its own, frame by frame (the stateless method; :mod:`edged.stages.privacy.stabilize` has the
track-stable one). Every de-identifier returns the exact rectangles it changed, so the original
crop of each one can be sealed and pasted back bit for bit.

Strength scales with the region: a region keeps about ``cells`` cells of detail across its longer
side, never cells smaller than ``min_cell_px``. The output of a region depends only on the pixels
inside that region (borders are reflected, never read from outside), so nothing of a neighbouring
region leaks into it: the original pixels, or for an edge-filled class (``privacy.edge_fill``) the
frame as the regions painted before it left it (:func:`paint_order`), de-identified where they overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import cv2
import numpy as np

from edged.core.classes import SENSITIVE_IDS
from edged.core.geometry import iou_matrix
from edged.core.types import Detections, TrackedObjects
from edged.link.records import UNTRACKED

Method = Literal["blur", "pixelate", "fill"]
METHODS: tuple[str, ...] = ("blur", "pixelate", "fill")
Shape = Literal["ellipse", "box"]
SHAPES: tuple[str, ...] = ("ellipse", "box")
_DUPLICATE_IOU = 0.3
"""A detection overlapping a same-class track box by this much is that track (not a new region)."""


class DeidError(ValueError):
    """Bad input to de-identification (image shape, box array); the message names what is wrong."""


@dataclass(slots=True)
class SensitiveRegions:
    """The sensitive objects of one frame (struct-of-arrays, one row per object)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    """Object boxes ``x1, y1, x2, y2`` as detected or predicted (before the margin)."""
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Tracker id, or :data:`UNTRACKED` for a detection not (yet) in a track."""
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    angles: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    """Orientation in radians (0: axis-aligned)."""
    detected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """False when the box is the tracker's prediction (no detection in this frame)."""
    confidence: np.ndarray | None = None
    """How sure each region is: a detection's score; for a track the higher of the score it started
    with and its last one (``None``: ``scores``)."""

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def confidences(self) -> np.ndarray:
        """Per region, the score that makes it confident (:attr:`confidence`, else :attr:`scores`)."""
        return self.scores if self.confidence is None else self.confidence

    def select(self, keep: np.ndarray) -> SensitiveRegions:
        return SensitiveRegions(
            self.boxes[keep], self.class_ids[keep], self.track_ids[keep], self.scores[keep],
            self.angles[keep], self.detected[keep], None if self.confidence is None else self.confidence[keep],
        )


def sensitive_regions(
    tracks: TrackedObjects | None, detections: Detections | None, min_score: float
) -> SensitiveRegions:
    """Every region of the frame that must be hidden.

    All sensitive tracks (matched or predicted), plus each sensitive detection scoring at least
    ``min_score`` that no same-class track box overlaps (IoU < 0.3): a face the tracker has not
    confirmed yet is hidden from its first frame on. A track is as confident as the higher of the score
    it started with and its last one.
    """
    parts: list[SensitiveRegions] = []
    if tracks is not None and len(tracks):
        t = tracks.select(np.isin(tracks.class_ids, SENSITIVE_IDS))
        parts.append(
            SensitiveRegions(
                t.boxes.astype(np.float32), t.class_ids.astype(np.int16), t.track_ids.astype(np.int64),
                t.scores.astype(np.float32), t.angles.astype(np.float32), t.detected.astype(bool),
                t.confidences().astype(np.float32),
            )
        )
    if detections is not None and len(detections):
        keep = np.isin(detections.class_ids, SENSITIVE_IDS) & (detections.scores >= min_score)
        d = detections.select(keep)
        if len(d) and parts and len(parts[0]):
            tracked = parts[0]
            iou = iou_matrix(d.boxes, tracked.boxes)
            same = d.class_ids[:, None] == tracked.class_ids[None, :]
            d = d.select(~((iou >= _DUPLICATE_IOU) & same).any(axis=1))
        if len(d):
            scores = d.scores.astype(np.float32)  # a detection is as confident as it scores
            parts.append(
                SensitiveRegions(
                    d.boxes.astype(np.float32), d.class_ids.astype(np.int16),
                    np.full(len(d), UNTRACKED, dtype=np.int64), scores,
                    d.angles.astype(np.float32), np.ones(len(d), dtype=bool), scores,
                )
            )
    if not parts:
        return SensitiveRegions()
    return SensitiveRegions(*(np.concatenate([getattr(p, n) for p in parts]) for n in SensitiveRegions.__slots__))


def within_unconfident_budget(
    regions: SensitiveRegions, width: int, height: int, margin: float, confident: float, share: float
) -> SensitiveRegions:
    """Every confident region, plus the unconfident ones (a detection scoring below ``confident``, a
    track that started below it and scores below it now), smallest first (then best-scoring), while
    what they add to the confident regions' cover (grown) is at most ``share`` of the frame: many
    small faces fit, a large false box on scenery does not, nor a track a false box started.

    A low-score detection may be a face, so it is hidden; but on close-up footage BlazeFace's and
    CenterFace's 0.1-0.4 boxes on cheeks, hands and backgrounds grow (with the margin) into most
    of the frame, which no longer shows anything. The budget is measured on a 1/4-scale mask.
    """
    unconfident = regions.confidences() < confident
    if share >= 1.0 or not unconfident.any():
        return regions
    scale = 4
    mw, mh = max(1, -(-width // scale)), max(1, -(-height // scale))
    mask = np.zeros((mh, mw), bool)
    grown_px = np.round(grow_boxes(regions.boxes, regions.angles, margin) / scale)
    grown = np.clip(grown_px, 0, [mw, mh, mw, mh]).astype(int)

    for x1, y1, x2, y2 in grown[~unconfident]:
        mask[y1:y2, x1:x2] = True
    covered, budget = 0, share * mask.size  # only what unconfident regions add counts
    keep = ~unconfident
    candidates = np.flatnonzero(unconfident)
    area = (grown[candidates, 2] - grown[candidates, 0]) * (grown[candidates, 3] - grown[candidates, 1])
    for i in candidates[np.lexsort((-regions.scores[candidates], area))]:
        x1, y1, x2, y2 = grown[i]
        added = int((~mask[y1:y2, x1:x2]).sum())
        if covered + added <= budget:
            mask[y1:y2, x1:x2] = True
            covered += added
            keep[i] = True
    return regions.select(keep)


def grow_boxes(boxes: np.ndarray, angles: np.ndarray | None, margin: float) -> np.ndarray:
    """Axis-aligned extent of each (possibly rotated) box, each side pushed out by ``margin`` x size.

    ``boxes`` are ``x1, y1, x2, y2`` of the unrotated box around its centre; ``angles`` rotate it
    about the centre. Returns float64 ``(N, 4)``, not clipped to the image.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    w, h = np.maximum(b[:, 2] - b[:, 0], 0), np.maximum(b[:, 3] - b[:, 1], 0)
    if angles is not None and len(angles):
        a = np.asarray(angles, dtype=np.float64)
        c, s = np.abs(np.cos(a)), np.abs(np.sin(a))
        w, h = w * c + h * s, w * s + h * c
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def pixel_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Float boxes to the integer pixel rectangles covering them, clipped to the image.

    ``int32 (N, 4)`` ``x1, y1, x2, y2`` with ``x2``/``y2`` exclusive; outward rounding, so the
    rectangle always contains the float box. A box wholly outside the image becomes empty.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.stack([np.floor(b[:, 0]), np.floor(b[:, 1]), np.ceil(b[:, 2]), np.ceil(b[:, 3])], axis=1)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out.astype(np.int32)


def cell_size(w: int, h: int, cells: int, min_cell_px: int) -> float:
    """Side of one cell of detail left in a ``w`` x ``h`` region."""
    return max(max(w, h) / cells, float(min_cell_px))


def field_shape(w: int, h: int, cell: float) -> tuple[int, int]:
    """``(rows, cols)`` of the low-resolution field of a region (at least 1 x 1)."""
    return max(1, math.ceil(h / cell)), max(1, math.ceil(w / cell))


def sample_field(patch: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-average ``patch`` down to ``shape`` (rows, cols): the detail a region keeps. float32."""
    rows, cols = shape
    return cv2.resize(patch.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA).reshape(rows, cols, -1)


EDGE_SHARE = 0.08
"""Thickness of the edge an edge-filled region is painted from, as a share of its shorter side: well
inside the margin that surrounds the object."""


def edge_field(patch: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The low-resolution field of a region painted from its outermost pixels alone: each side's
    colours blended inward (a Coons patch), so nothing of what lies inside the edge shows. float32."""
    rows, cols = shape
    h, w = patch.shape[:2]
    p = patch.astype(np.float32).reshape(h, w, -1)
    k = max(1, round(EDGE_SHARE * min(h, w)))

    def profile(strip: np.ndarray, n: int) -> np.ndarray:  # a side's colours at the n cell centres
        line = strip.mean(axis=0, keepdims=True)
        return cv2.resize(line, (n, 1), interpolation=cv2.INTER_AREA).reshape(n, -1)

    top, bottom = profile(p[:k], cols), profile(p[h - k :], cols)
    left, right = profile(p[:, :k].transpose(1, 0, 2), rows), profile(p[:, w - k :].transpose(1, 0, 2), rows)
    corners = [p[ys, xs].reshape(-1, p.shape[2]).mean(axis=0)
               for ys in (slice(0, k), slice(h - k, h)) for xs in (slice(0, k), slice(w - k, w))]
    u = ((np.arange(cols, dtype=np.float32) + 0.5) / cols)[None, :, None]
    v = ((np.arange(rows, dtype=np.float32) + 0.5) / rows)[:, None, None]
    sides = (1 - v) * top[None] + v * bottom[None] + (1 - u) * left[:, None] + u * right[:, None]
    tl, tr, bl, br = corners
    return sides - ((1 - u) * (1 - v) * tl + u * (1 - v) * tr + (1 - u) * v * bl + u * v * br)


def render_field(fld: np.ndarray, w: int, h: int, method: Method) -> np.ndarray:
    """Draw a low-resolution field at ``w`` x ``h``: flat cells (pixelate), a smooth surface (blur),
    or its mean colour (fill). Returns uint8 ``(h, w, C)``."""
    channels = fld.shape[2]
    if method == "fill":
        colour = fld.reshape(-1, channels).mean(axis=0)
        return np.broadcast_to(np.clip(np.rint(colour), 0, 255).astype(np.uint8), (h, w, channels)).copy()
    if method == "pixelate":
        out = cv2.resize(fld, (w, h), interpolation=cv2.INTER_NEAREST)
    else:  # blur: upsample 4x, soften the bilinear creases, then scale to size
        rows, cols = fld.shape[:2]
        up = cv2.resize(fld, (cols * 4, rows * 4), interpolation=cv2.INTER_LINEAR)
        up = cv2.GaussianBlur(up, (0, 0), 2.0, borderType=cv2.BORDER_REPLICATE)
        out = cv2.resize(up, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(h, w, channels)


def gaussian_blur(patch: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``patch`` alone (reflected borders). Large sigmas run on a shrunk copy: the
    blurred image has no detail finer than sigma, so shrinking by sigma/2 first loses nothing visible
    and keeps the cost flat for big regions."""
    h, w = patch.shape[:2]
    if sigma <= 4.0:
        return cv2.GaussianBlur(patch, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    f = sigma / 2.0
    sw, sh = max(1, round(w / f)), max(1, round(h / f))
    small = cv2.resize(patch, (sw, sh), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(patch.shape)


def shape_mask(rect: tuple[int, int, int, int], grown: np.ndarray, shape: Shape) -> np.ndarray | None:
    """Which pixels of the rectangle ``rect`` (x1, y1, x2, y2) are hidden: the ellipse inscribed in the
    grown box ``grown`` (float x1, y1, x2, y2), or ``None`` for all of them (``box``)."""
    if shape == "box":
        return None
    x1, y1, x2, y2 = rect
    cx, cy = (grown[0] + grown[2]) / 2 - x1, (grown[1] + grown[3]) / 2 - y1
    rx, ry = max((grown[2] - grown[0]) / 2, 0.5), max((grown[3] - grown[1]) / 2, 0.5)
    xs = (np.arange(x2 - x1, dtype=np.float32) + 0.5 - cx) / rx
    ys = (np.arange(y2 - y1, dtype=np.float32) + 0.5 - cy) / ry
    return (ys[:, None] ** 2 + xs[None, :] ** 2) <= 1.0


def paste(out: np.ndarray, rect: tuple[int, int, int, int], drawn: np.ndarray, mask: np.ndarray | None) -> None:
    """Write ``drawn`` into ``out`` over ``rect``, only where ``mask`` holds (everywhere without one)."""
    x1, y1, x2, y2 = rect
    if mask is None:
        out[y1:y2, x1:x2] = drawn
    else:
        out[y1:y2, x1:x2][mask] = drawn[mask]


def paint_order(rects: np.ndarray, edge: np.ndarray) -> list[int]:
    """The order regions are painted in: those drawn from their own pixels first, then the edge-filled
    ones largest first. An edge-filled region is painted from the frame as painted so far, so a
    smaller one inside a larger one (a plate's text line inside the plate) takes the larger one's
    paint at its edge, not the plate's."""
    area = (rects[:, 2] - rects[:, 0]).astype(np.int64) * (rects[:, 3] - rects[:, 1])
    own = [int(i) for i in np.flatnonzero(~edge)]
    edged = np.flatnonzero(edge)
    return own + [int(i) for i in edged[np.argsort(-area[edged], kind="stable")]]


def deidentify_patch(patch: np.ndarray, method: Method, cells: int, min_cell_px: int, edge: bool = False) -> np.ndarray:
    """De-identify one region on its own (no state): Gaussian blur of sigma = cell, pixelation into
    cells, or a fill with the region's mean colour; with ``edge``, of the field painted from the
    region's edge (:func:`edge_field`) instead of its own pixels."""
    h, w = patch.shape[:2]
    cell = cell_size(w, h, cells, min_cell_px)
    if edge:
        return render_field(edge_field(patch, field_shape(w, h, cell)), w, h, method).reshape(patch.shape)
    if method == "blur":
        return gaussian_blur(patch, cell)
    return render_field(sample_field(patch, field_shape(w, h, cell)), w, h, method).reshape(patch.shape)


@dataclass(slots=True)
class DeidResult:
    """A de-identified frame and the rectangles that were changed."""

    image: np.ndarray
    """Copy of the frame with every region hidden (the input array is never modified)."""
    rects: np.ndarray
    """``int32 (N, 4)`` ``x1, y1, x2, y2`` (exclusive ends) of the pixels replaced for region ``i``
    (clipped to the image; empty for a region wholly outside it). The original crop of region ``i`` is
    ``frame[y1:y2, x1:x2]``."""


class Deidentifier(Protocol):
    """Anything that hides the sensitive regions of a frame."""

    def __call__(self, pixels: np.ndarray, regions: SensitiveRegions) -> DeidResult: ...


def check_image(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise DeidError(
            f"image must be a uint8 (H, W) or (H, W, C) array, got "
            f"{getattr(pixels, 'dtype', type(pixels).__name__)} {getattr(pixels, 'shape', '')}"
        )
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise DeidError(f"image is empty: shape {pixels.shape}")


def check_style(method: str, shape: str) -> None:
    """:class:`DeidError` naming an unknown de-identification method or region shape."""
    if method not in METHODS:
        raise DeidError(f"unknown de-identification method {method!r}; known: {', '.join(METHODS)}")
    if shape not in SHAPES:
        raise DeidError(f"unknown region shape {shape!r}; known: {', '.join(SHAPES)}")


class FrameDeidentifier:
    """Hides each region of each frame on its own (no memory of earlier frames)."""

    def __init__(self, method: Method = "blur", margin: float = 0.4, cells: int = 2, min_cell_px: int = 4,
                 shape: Shape = "box", edge_fill: tuple[int, ...] = ()) -> None:
        check_style(method, shape)
        self.method: Method = method
        self.shape: Shape = shape
        self.margin = margin
        self.cells = cells
        self.min_cell_px = min_cell_px
        self.edge_fill = frozenset(edge_fill)
        """Class ids whose regions are painted from their edge (:func:`edge_field`)."""

    def __call__(self, pixels: np.ndarray, regions: SensitiveRegions) -> DeidResult:
        check_image(pixels)
        h, w = pixels.shape[:2]
        grown = grow_boxes(regions.boxes, regions.angles, self.margin)
        rects = pixel_boxes(grown, w, h)
        out = pixels.copy()
        edge = np.isin(regions.class_ids, list(self.edge_fill))
        for i in paint_order(rects, edge):
            x1, y1, x2, y2 = rects[i]
            if x2 > x1 and y2 > y1:
                source = out if edge[i] else pixels
                drawn = deidentify_patch(source[y1:y2, x1:x2], self.method, self.cells, self.min_cell_px, bool(edge[i]))
                paste(out, (x1, y1, x2, y2), drawn, shape_mask((x1, y1, x2, y2), grown[i], self.shape))
        return DeidResult(out, rects)
