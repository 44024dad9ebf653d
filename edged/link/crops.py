"""The pixels of a sealed record's crops: the PNG codec and the rectangles that mask parts of a crop."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from edged.link.records import RecordFormatError, Rect

PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
"""Fastest deflate level, Huffman coding only: camera crops (sensor noise) leave few repeated
strings to find. Any PNG decoder reads it."""


def encode_png(pixels: np.ndarray) -> bytes:
    """Lossless PNG of a BGR (or grey) uint8 array, in memory."""
    ok, buf = cv2.imencode(".png", pixels, PNG_PARAMS)
    if not ok:
        raise RecordFormatError(f"could not PNG-encode a crop of shape {pixels.shape}")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """Decode a crop PNG to a BGR (or grey) uint8 array."""
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise RecordFormatError("a crop is not a valid PNG")
    return arr


def intersect(a: Rect, b: Rect) -> Rect | None:
    """The rectangle both ``a`` and ``b`` cover, or ``None`` when they do not overlap."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (x1, y1, x2 - x1, y2 - y1) if x2 > x1 and y2 > y1 else None


def masked_pixels(w: int, h: int, masked: Iterable[Rect]) -> np.ndarray:
    """``bool (h, w)``: True where a crop of that size has a masked pixel."""
    out = np.zeros((h, w), dtype=bool)
    for x, y, mw, mh in masked:
        out[y : y + mh, x : x + mw] = True
    return out
