"""Scores a run against the fake camera's ground truth (a sink; only frames that carry it count)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from edged.core.classes import CLASS_NAMES
from edged.core.geometry import iou_matrix
from edged.stages.pipeline import FrameWork
from edged_sim.ground_truth import truth_of


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
        gt, det = truth_of(work.frame.ground_truth), work.detections
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

    def figures(self) -> dict[str, dict[str, float | int | None]]:
        out: dict[str, dict[str, float | int | None]] = {}
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
        return {
            "detection_vs_ground_truth": {"iou": self.iou_threshold, "frames": self.frames, "classes": self.figures()}
        }


def tracking_scores(
    gt_frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    out_frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    threshold: float = 0.5,
    hota: bool = True,
) -> dict[str, float | int]:
    """CLEAR (MOTA, IDSW...), identity (IDF1) and HOTA from Roboflow's ``trackers.eval``.

    Each frame is ``(ids, class_ids, boxes)`` for ground truth and for tracker output; IoU is
    class-aware (a track only matches ground truth of its class). ``trackers`` is a test/dev
    dependency, imported here only when scores are asked for.
    """
    from trackers.eval import compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

    gt_ids, tr_ids, sims = [], [], []
    for (g_ids, g_cls, g_box), (t_ids, t_cls, t_box) in zip(gt_frames, out_frames, strict=True):
        sim = iou_matrix(g_box, t_box) * (g_cls[:, None] == t_cls[None, :])
        gt_ids.append(np.asarray(g_ids, dtype=np.int64))
        tr_ids.append(np.asarray(t_ids, dtype=np.int64))
        sims.append(sim)
    clear = compute_clear_metrics(gt_ids, tr_ids, sims, threshold=threshold)
    ident = compute_identity_metrics(gt_ids, tr_ids, sims, threshold=threshold)
    hota_value = float(compute_hota_metrics(gt_ids, tr_ids, sims)["HOTA"]) if hota else float("nan")
    return {
        "MOTA": float(clear["MOTA"]), "IDF1": float(ident["IDF1"]), "HOTA": hota_value,
        "IDSW": int(clear["IDSW"]), "FP": int(clear["CLR_FP"]), "FN": int(clear["CLR_FN"]),
        "TP": int(clear["CLR_TP"]), "Frag": int(clear["Frag"]), "MT": int(clear["MT"]), "ML": int(clear["ML"]),
        "gt_objects": int(len(np.unique(np.concatenate(gt_ids)))) if gt_ids else 0,
        "tracks": int(len(np.unique(np.concatenate(tr_ids)))) if tr_ids else 0,
    }


class TrackingScore:
    """MOTA / IDF1 / ID switches of the live tracker (real detections) against ground truth.

    Scores the selection classes' tracks that matched a detection in the frame. Ground truth less
    than ``min_visible`` visible is a distractor: track boxes on it count neither way (as MOT
    benchmarks treat them). Keeps at most ``max_frames`` frames (the first ones) to bound memory.
    """

    def __init__(self, classes: list[str], min_visible: float = 0.5, max_frames: int = 36_000) -> None:
        self.class_ids = np.array([CLASS_NAMES.index(c) for c in classes])
        self.min_visible = min_visible
        self.max_frames = max_frames
        self.gt: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def consume(self, work: FrameWork) -> None:
        gt, tracks = truth_of(work.frame.ground_truth), work.tracks
        if gt is None or tracks is None or len(self.gt) >= self.max_frames:
            return
        in_class = np.isin(gt.class_ids, self.class_ids)
        scored = in_class & (gt.visible >= self.min_visible)
        hidden = in_class & ~scored
        t = np.isin(tracks.class_ids, self.class_ids) & tracks.detected
        boxes, cls = tracks.boxes[t], tracks.class_ids[t]
        if hidden.any() and len(boxes):
            on_hidden = iou_matrix(boxes, gt.boxes[hidden]) * (cls[:, None] == gt.class_ids[hidden][None, :])
            t_keep = on_hidden.max(axis=1) < 0.5
        else:
            t_keep = np.ones(len(boxes), dtype=bool)
        self.gt.append((gt.object_ids[scored], gt.class_ids[scored], gt.boxes[scored]))
        self.out.append((tracks.track_ids[t][t_keep], cls[t_keep], boxes[t_keep]))

    def close(self) -> dict[str, Any]:
        if not self.gt:
            return {}
        try:
            scores = tracking_scores(self.gt, self.out, hota=False)
        except ImportError:
            return {"tracking_vs_ground_truth": "not scored: the 'trackers' package is not installed"}
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items() if k != "HOTA"}
        return {"tracking_vs_ground_truth": {"frames": len(self.gt), **rounded}}
