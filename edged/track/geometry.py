"""Box geometry on stacked arrays: IoU matrices and box-format conversions."""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` ``(N, 4)`` with every box in ``b`` ``(M, 4)`` (both ``x1, y1, x2, y2``).

    Returns an ``(N, M)`` float64 array; boxes of zero area have IoU 0 with everything.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.float64)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0.0, inter / union, 0.0)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners to centre and size, float64."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + size / 2, size], axis=1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` centre and size to corners, float64."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    half = b[:, 2:] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def expand(boxes: np.ndarray, ratio: float) -> np.ndarray:
    """Boxes grown by ``ratio`` of their width/height on every side (buffered IoU, C-BIoU)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    grow = (b[:, 2:] - b[:, :2]) * ratio
    return np.concatenate([b[:, :2] - grow, b[:, 2:] + grow], axis=1)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes clipped to the image ``[0, width] x [0, height]`` (a new float64 array)."""
    out = np.maximum(boxes, 0.0)
    np.minimum(out, (width, height, width, height), out=out)
    return out
