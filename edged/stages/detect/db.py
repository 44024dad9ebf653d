"""Decode a DB (Differentiable Binarization) text detector's probability map into text boxes.

The map ``(1, H, W, 1)`` holds, per input pixel, the probability that it lies on text (PaddleOCR's
text detectors; files built by ``tools.models.build_text_det``). As PaddleOCR's post-processing does:
pixels above :data:`TEXT_PROBABILITY` are text, each connected group of them is one box scored by
its mean probability, and the box is pushed out by ``UNCLIP x area / perimeter`` on every side,
since the network is trained to mark a shrunk core of each text line.
"""

from __future__ import annotations

import cv2
import numpy as np

from edged.core.geometry import clip_boxes
from edged.stages.detect.decoders import Raw, nms

TEXT_PROBABILITY = 0.3
"""A pixel is text above this probability (PaddleOCR's ``thresh``)."""
UNCLIP = 1.5
"""Box growth as PaddleOCR's ``unclip_ratio``: each side moves out by this x area / perimeter."""
MIN_SIDE = 3
"""Groups narrower or shorter than this many pixels are noise (PaddleOCR's ``min_size``)."""


def check_db_output(shape: tuple[int, ...], input_wh: tuple[int, int]) -> None:
    """``ValueError`` unless ``shape`` is one probability map ``(1, H, W, 1)`` at the input's size."""
    w, h = input_wh
    if tuple(shape) != (1, h, w, 1):
        raise ValueError(f"db output {tuple(shape)} is not one probability map (1, {h}, {w}, 1) at the input's size")


def decode_db(outputs: list[np.ndarray], input_wh: tuple[int, int], min_score: float, iou: float) -> Raw:
    """Text boxes ``x1, y1, x2, y2`` (input pixels, clipped), their mean probability and label 0, for
    groups scoring at least ``min_score``, after NMS."""
    prob = np.ascontiguousarray(outputs[0].reshape(outputs[0].shape[1:3]), dtype=np.float32)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((prob > TEXT_PROBABILITY).astype(np.uint8), connectivity=8)
    if n <= 1:
        return Raw()
    mean = np.bincount(labels.reshape(-1), weights=prob.reshape(-1), minlength=n)[1:] / stats[1:, cv2.CC_STAT_AREA]
    x, y = stats[1:, cv2.CC_STAT_LEFT].astype(np.float32), stats[1:, cv2.CC_STAT_TOP].astype(np.float32)
    w, h = stats[1:, cv2.CC_STAT_WIDTH].astype(np.float32), stats[1:, cv2.CC_STAT_HEIGHT].astype(np.float32)
    keep = (mean >= min_score) & (np.minimum(w, h) >= MIN_SIDE)
    if not keep.any():
        return Raw()
    x, y, w, h = x[keep], y[keep], w[keep], h[keep]
    grow = UNCLIP * w * h / (2 * (w + h))
    boxes = np.stack([x - grow, y - grow, x + w + grow, y + h + grow], axis=1)
    boxes = clip_boxes(boxes, *input_wh).astype(np.float32)
    raw = Raw(boxes, mean[keep].astype(np.float32), np.zeros(len(boxes), np.int32))
    return raw.select(nms(raw.boxes, raw.scores, raw.labels, iou))
