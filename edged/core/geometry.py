"""Box geometry on stacked arrays: IoU matrices and box-format conversions."""

from __future__ import annotations

from typing import cast

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` ``(N, 4)`` with every box in ``b`` ``(M, 4)`` (both ``x1, y1, x2, y2``).

    Returns an ``(N, M)`` float64 array; boxes of zero area have IoU 0 with everything.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.float64)
    return iou_f64(a, b)


def iou_f64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`iou_matrix` of two non-empty ``(N, 4)`` and ``(M, 4)`` float64 arrays, without the checks."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(iw, 0.0, out=iw)
    np.maximum(ih, 0.0, out=ih)
    inter = iw
    inter *= ih
    size_a = np.maximum(a[:, 2:4] - a[:, 0:2], 0.0)
    size_b = np.maximum(b[:, 2:4] - b[:, 0:2], 0.0)
    area_a = size_a[:, 0] * size_a[:, 1]
    area_b = size_b[:, 0] * size_b[:, 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(union), where=union > 0.0)


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


BORDER_PX = 1.0
"""A box side within this many pixels of the image border touches it (the box is clipped there)."""
LEAVING_SLACK = 1.0 - 1e-6
"""A side smaller than this fraction of the full size (less a pixel) is cut off by the border."""


def border_contact(boxes: np.ndarray, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Per ``x1, y1, x2, y2`` box: does it touch the left/right border, the top/bottom border?"""
    touch = _touching(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), width, height)
    return touch[:, 0], touch[:, 1]


def _touching(b: np.ndarray, width: float, height: float) -> np.ndarray:
    """``(N, 2)`` of :func:`border_contact` (left/right, top/bottom) for float64 ``(N, 4)`` boxes."""
    touch = b[:, 0:2] <= BORDER_PX
    touch |= b[:, 2:4] >= (width - BORDER_PX, height - BORDER_PX)
    return touch


def full_size(previous: np.ndarray, boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """``(N, 2)`` width and height of each object when wholly in view: a side not clipped by the
    border measures it anew; a clipped one keeps the largest size seen (``previous``)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = b[:, 2:4] - b[:, 0:2]
    return np.where(_touching(b, width, height), np.maximum(previous, size), size)


def leaving(last: np.ndarray, full: np.ndarray, width: float, height: float) -> np.ndarray:
    """``(N, 2)``: is each track leaving through the left/right, the top/bottom border?

    A track is leaving through a border when its last box touches that border and is smaller there
    than the object's full size (part of it is already outside).
    """
    last = np.asarray(last, dtype=np.float64).reshape(-1, 4)
    last_size = last[:, 2:4] - last[:, 0:2]
    return _touching(last, width, height) & (last_size < LEAVING_SLACK * full - 1.0)


def leaving_mismatch(last: np.ndarray, full: np.ndarray, predicted: np.ndarray, dets: np.ndarray,
                     width: float, height: float, growth: float) -> np.ndarray:
    """``(N, M)``: track ``i`` is leaving the image and detection ``j`` cannot be the rest of it.

    A track is leaving through a border when its last box touches that border and is smaller there
    than the object's full size (part of it is already outside). What is left of a leaving object
    only shrinks, so a detection wider (taller) than ``1 + growth`` times the smaller of the track's
    last and predicted width (height) is another object entering at the same border.
    """
    last = np.asarray(last, dtype=np.float64).reshape(-1, 4)
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 4)
    last_size = last[:, 2:4] - last[:, 0:2]
    pred = np.asarray(predicted, dtype=np.float64).reshape(-1, 4)
    ref = np.minimum(last_size, pred[:, 2:4] - pred[:, 0:2])
    out = leaving(last, full, width, height)
    det_size = dets[:, 2:4] - dets[:, 0:2]
    grows = det_size[None, :, :] > (1.0 + growth) * ref[:, None, :]
    return cast(np.ndarray, (out[:, None, :] & grows).any(axis=2))
