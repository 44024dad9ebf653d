"""The best-image rules (qualifies, better, immediate or cached) as small pure functions.

Every function works on scalars and, elementwise, on numpy arrays (one row per track). Boxes are
``x1, y1, x2, y2`` of the unrotated box with an orientation ``angle`` (radians) about its centre.
"""

from __future__ import annotations

import numpy as np

from edged.config import SelectConfig


def box_size(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of each box."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Box area ``w * h`` in pixels (of the box as detected, rotated or not)."""
    w, h = box_size(boxes)
    return w * h


def area_ratio(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Box area / image area (box pixel count / image pixel count)."""
    return box_area(boxes) / float(width * height)


def min_edge_distance(boxes: np.ndarray, width: int, height: int, angles: np.ndarray | None = None) -> np.ndarray:
    """Smallest distance from a box to any image border (the edge distance).

    The midpoints of the box's four sides are measured against the four image borders and the
    minimum is taken; a box touching or crossing a border has distance 0. For an axis-aligned box
    inside the image this is ``min(x1, y1, W - x2, H - y2)``.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    half_w, half_h = (b[:, 2] - b[:, 0]) / 2, (b[:, 3] - b[:, 1]) / 2
    a = np.zeros(b.shape[0]) if angles is None else np.asarray(angles, dtype=np.float64).reshape(-1)
    cos, sin = np.cos(a), np.sin(a)
    # Side midpoints: centre +- half_w along the box's x axis, +- half_h along its y axis.
    mx = np.stack([cx + half_w * cos, cx - half_w * cos, cx - half_h * sin, cx + half_h * sin], axis=1)
    my = np.stack([cy + half_w * sin, cy - half_w * sin, cy + half_h * cos, cy - half_h * cos], axis=1)
    dist = np.minimum(np.minimum(mx, width - mx), np.minimum(my, height - my)).min(axis=1)
    return np.maximum(dist, 0.0)


def qualifies(
    is_latest: np.ndarray | bool, n_observations: np.ndarray | int, box_width: np.ndarray | float,
    box_height: np.ndarray | float, score: np.ndarray | float, config: SelectConfig,
) -> np.ndarray:
    """Qualifies: the track's last observation is in this image (``is_latest``) and it is the track's
    only observation, or the box is at least ``min_width`` x ``min_height`` and the score >= ``score1``."""
    big_enough = (
        (np.asarray(box_width) >= config.min_width)
        & (np.asarray(box_height) >= config.min_height)
        & (np.asarray(score) >= config.score1)
    )
    return np.asarray(is_latest, dtype=bool) & ((np.asarray(n_observations) == 1) | big_enough)


def is_better(
    edge_now: np.ndarray | float, score_now: np.ndarray | float, manual_now: np.ndarray | bool,
    area_now: np.ndarray | float, edge_then: np.ndarray | float, score_then: np.ndarray | float,
    area_then: np.ndarray | float, config: SelectConfig,
) -> np.ndarray:
    """Better than the previous best when all hold: edge distance now >= then and >= ``edge1``,
    score now >= then, the image is in manual (locked) exposure, area now >= then. Ties are better."""
    return (
        (np.asarray(edge_now) >= edge_then)
        & (np.asarray(edge_now) >= config.edge1)
        & (np.asarray(score_now) >= score_then)
        & np.asarray(manual_now, dtype=bool)
        & (np.asarray(area_now) >= area_then)
    )


def sends_immediately(
    ratio: np.ndarray | float, score: np.ndarray | float, edge: np.ndarray | float, config: SelectConfig
) -> np.ndarray:
    """Immediate upload when area ratio > ``area_ratio``, score >= ``score2`` and edge distance >
    ``edge2`` (strict, strict-not, strict: ``score == score2`` is immediate); otherwise cached."""
    return (
        (np.asarray(ratio) > config.area_ratio)
        & (np.asarray(score) >= config.score2)
        & (np.asarray(edge) > config.edge2)
    )
