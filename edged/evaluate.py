"""Scores a run against the fake camera's ground truth (a sink; only frames that carry it count)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from edged.classes import CLASS_NAMES
from edged.pipeline import FrameWork
from edged.track.geometry import iou_matrix


def match_count(gt_boxes: np.ndarray, det_boxes: np.ndarray, iou_threshold: float) -> int:
    """Ground-truth boxes matched one-to-one by a detection with IoU >= ``iou_threshold``."""
    if len(gt_boxes) == 0 or len(det_boxes) == 0:
        return 0
    iou = iou_matrix(gt_boxes, det_boxes)
    rows, cols = linear_sum_assignment(-iou)
    return int((iou[rows, cols] >= iou_threshold).sum())


class DetectionRecall:
    """Per-class detection recall and precision at an IoU threshold against ground truth.

    Ground-truth objects less than ``min_visible`` inside the frame, or smaller than ``min_size``
    pixels on their short side, are not counted (no detector is expected to find a sliver).
    """

    def __init__(self, iou_threshold: float = 0.5, min_visible: float = 0.5, min_size: float = 8.0) -> None:
        self.iou_threshold = iou_threshold
        self.min_visible = min_visible
        self.min_size = min_size
        n = len(CLASS_NAMES)
        self.gt = np.zeros(n, dtype=np.int64)
        self.hits = np.zeros(n, dtype=np.int64)
        self.dets = np.zeros(n, dtype=np.int64)
        self.det_hits = np.zeros(n, dtype=np.int64)
        self.frames = 0

    def consume(self, work: FrameWork) -> None:
        gt, det = work.frame.ground_truth, work.detections
        if gt is None or det is None or "cover" in gt.events:
            return
        self.frames += 1
        size = np.minimum(gt.boxes[:, 2] - gt.boxes[:, 0], gt.boxes[:, 3] - gt.boxes[:, 1])
        countable = (gt.visible >= self.min_visible) & (size >= self.min_size)
        for cid in np.union1d(np.unique(gt.class_ids), np.unique(det.class_ids)):
            g = gt.boxes[countable & (gt.class_ids == cid)]
            d = det.boxes[det.class_ids == cid]
            hits = match_count(g, d, self.iou_threshold)
            self.gt[cid] += len(g)
            self.hits[cid] += hits
            self.dets[cid] += len(d)
            # precision counts a detection as right if it matches any ground-truth box of its
            # class, countable or not (finding a half-visible car is not a false positive)
            self.det_hits[cid] += match_count(gt.boxes[gt.class_ids == cid], d, self.iou_threshold)

    def figures(self) -> dict[str, dict[str, float | int]]:
        out: dict[str, dict[str, float | int]] = {}
        for cid, name in enumerate(CLASS_NAMES):
            if self.gt[cid] == 0 and self.dets[cid] == 0:
                continue
            out[name] = {
                "ground_truth": int(self.gt[cid]),
                "detections": int(self.dets[cid]),
                "recall": round(float(self.hits[cid] / self.gt[cid]), 4) if self.gt[cid] else None,
                "precision": round(float(self.det_hits[cid] / self.dets[cid]), 4) if self.dets[cid] else None,
            }
        return out

    def close(self) -> dict[str, Any]:
        return {"detection_vs_ground_truth": {"iou": self.iou_threshold, "frames": self.frames, "classes": self.figures()}}
