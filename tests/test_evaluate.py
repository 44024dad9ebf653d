"""Run-summary scoring against ground truth: detection recall and tracking MOTA/IDF1."""

from __future__ import annotations

import numpy as np

from edged.core.classes import class_id
from edged.core.types import Detections, Exposure, ExposureMode, Frame, FrameMeta, Position, TrackedObjects
from edged.stages.pipeline import FrameWork
from edged_sim.evaluate import DetectionRecall, TrackingScore
from edged_sim.ground_truth import GroundTruth

CAR = class_id("car")


def work(k: int, boxes: np.ndarray, ids: np.ndarray, det: Detections | None = None,
         tracks: TrackedObjects | None = None) -> FrameWork:
    meta = FrameMeta(f"img{k}", k, "v", 1.7e9 + k / 10, Exposure(ExposureMode.MANUAL, 2000, 1), Position(), 640, 480)
    n = len(ids)
    gt = GroundTruth(ids, np.full(n, CAR, np.int16), boxes.astype(np.float32), np.full(n, -1), np.ones(n, np.float32),
                     ("",) * n)
    w = FrameWork(Frame(meta, np.zeros((480, 640, 3), np.uint8), gt))
    w.detections, w.tracks = det, tracks
    return w


def scene(frames: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two cars moving right, ids 1 and 2."""
    return [
        (np.array([[10 + 5 * k, 100, 90 + 5 * k, 160], [300 - 4 * k, 300, 380 - 4 * k, 360]], float), np.array([1, 2]))
        for k in range(frames)
    ]


def tracked(boxes: np.ndarray, ids: np.ndarray) -> TrackedObjects:
    n = len(ids)
    return TrackedObjects(ids.astype(np.int64), np.full(n, CAR, np.int16), boxes.astype(np.float32),
                          np.ones(n, np.float32), np.zeros(n, np.float32), np.ones(n, bool))


def test_perfect_tracks_score_one_and_a_swap_is_an_id_switch() -> None:
    perfect, swapped = TrackingScore(["car"]), TrackingScore(["car"])
    for k, (boxes, ids) in enumerate(scene()):
        perfect.consume(work(k, boxes, ids, tracks=tracked(boxes, ids + 100)))
        later = ids[::-1] + 100 if k >= 10 else ids + 100  # the tracker swaps the two identities
        swapped.consume(work(k, boxes, ids, tracks=tracked(boxes, later)))
    p = perfect.close()["tracking_vs_ground_truth"]
    s = swapped.close()["tracking_vs_ground_truth"]
    assert p["MOTA"] == 1.0 and p["IDF1"] == 1.0 and p["IDSW"] == 0 and p["frames"] == 20
    assert s["IDSW"] == 2 and s["MOTA"] < 1.0 and s["IDF1"] < 1.0


def test_detection_recall_counts_hits_and_misses() -> None:
    rec = DetectionRecall()
    for k, (boxes, ids) in enumerate(scene(10)):
        keep = boxes[:1] if k % 2 else boxes  # every other frame misses the second car
        det = Detections(keep.astype(np.float32), np.ones(len(keep), np.float32), np.full(len(keep), CAR, np.int16),
                         np.zeros(len(keep), np.float32))
        rec.consume(work(k, boxes, ids, det=det))
    car = rec.close()["detection_vs_ground_truth"]["classes"]["car"]
    assert car == {"ground_truth": 20, "detections": 15, "recall": 0.75, "precision": 1.0}
