"""ByteTrack-style multi-class tracker (SPEC S3), one track set per class, state in stacked arrays.

Per frame and class: Kalman-predict every track; associate high-score detections with all confirmed
tracks (tracked and lost) by IoU; extend unconfirmed candidates with the remaining high-score detections and start
candidates from what is left (score >= ``birth_score``); associate low-score detections with every
track and candidate still unmatched (a stricter IoU); confirm a candidate after
``confirm_hits`` consecutive matches (it then gets its persistent id); remove candidates on their
first miss and tracks lost for more than ``lost_buffer_s``. Assignment is the Jonker-Volgenant
solver (``lap.lapjv``) on ``1 - IoU`` with a cost limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lap
import numpy as np

from edged.classes import CLASS_NAMES
from edged.config import TrackConfig
from edged.track import kalman
from edged.track.geometry import cxcywh_to_xyxy, expand, iou_matrix, xyxy_to_cxcywh
from edged.track.ids import IdSource
from edged.types import Detections, FrameMeta, TrackedObjects

UNCONFIRMED = -1
"""Track id of a candidate that has not yet been confirmed."""
TIME_EPS = 1e-6
"""Slack on time windows: epoch timestamps in float64 carry ~1e-7 s of rounding."""


class TrackerInputError(ValueError):
    """The detections or frame metadata given to the tracker are malformed; nothing was changed."""


def assign(iou: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of rows to columns with IoU >= ``min_iou``.

    Returns ``(pairs (K, 2), unmatched_rows, unmatched_cols)``.
    """
    n, m = iou.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), dtype=np.int64), np.arange(n), np.arange(m)
    cost = 1.0 - iou
    # lapjv treats cost_limit as inclusive of ties poorly; nudge so IoU == min_iou still matches.
    _, row_to_col, col_to_row = lap.lapjv(cost, extend_cost=True, cost_limit=1.0 - min_iou + 1e-9)
    rows = np.flatnonzero(row_to_col >= 0)
    pairs = np.column_stack([rows, row_to_col[rows]]).astype(np.int64)
    return pairs, np.flatnonzero(row_to_col < 0), np.flatnonzero(col_to_row < 0)


@dataclass(slots=True)
class TrackSet:
    """All tracks (and candidates) of one class, one row per track."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 8, 8)))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Consecutive frames matched (reset by a miss)."""
    last_seen: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Timestamp of the last matched detection."""
    tracked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Matched in the previous frame (ByteTrack's Tracked state); False while lost."""
    score: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    angle: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    box: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    """Last matched detection box."""

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def confirmed(self) -> np.ndarray:
        return self.ids != UNCONFIRMED

    def keep(self, mask: np.ndarray) -> None:
        for name in TrackSet.__slots__:
            setattr(self, name, getattr(self, name)[mask])

    def extend(self, other: TrackSet) -> None:
        for name in TrackSet.__slots__:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))


@dataclass(slots=True)
class TrackStep:
    """What one :meth:`Tracker.update` produced."""

    objects: TrackedObjects
    """Confirmed tracks matched in this frame (``detected=True``, detector's box) and lost ones within
    ``predicted_output_s`` (``detected=False``, Kalman-predicted box)."""
    ended_ids: np.ndarray
    """Ids of confirmed tracks removed in this frame (lost too long or predicted out of view)."""


def _check_detections(dets: Detections) -> None:
    n = len(dets)
    for name in ("scores", "class_ids", "angles"):
        arr = getattr(dets, name)
        if arr.shape != (n,):
            raise TrackerInputError(f"detections.{name} has shape {arr.shape}, expected ({n},) to match boxes")
    if dets.boxes.ndim != 2 or dets.boxes.shape[1] != 4:
        raise TrackerInputError(f"detections.boxes has shape {dets.boxes.shape}, expected (N, 4)")
    if n and not (np.isfinite(dets.boxes).all() and np.isfinite(dets.scores).all()):
        raise TrackerInputError("detections contain NaN or infinite boxes or scores")
    if n and ((dets.class_ids < 0).any() or (dets.class_ids >= len(CLASS_NAMES)).any()):
        bad = int(dets.class_ids[(dets.class_ids < 0) | (dets.class_ids >= len(CLASS_NAMES))][0])
        raise TrackerInputError(f"detections contain class id {bad}; known ids are 0..{len(CLASS_NAMES) - 1}")


class Tracker:
    """Tracks every class separately; ``update(meta, detections)`` once per frame, in time order.

    ``fps`` is the nominal capture rate: the Kalman step is in frames, so a gap of two frame periods
    (a dropped frame) predicts two steps ahead.
    """

    def __init__(self, config: TrackConfig, ids: IdSource, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.config = config
        self.ids = ids
        self.fps = fps
        self.noise = kalman.KalmanNoise(config.std_position, config.std_velocity, config.std_init_velocity)
        self.sets: dict[int, TrackSet] = {}
        self.last_timestamp: float | None = None
        self.frames = 0

    def live_ids(self) -> np.ndarray:
        """Ids of all confirmed tracks (tracked or lost)."""
        parts = [s.ids[s.confirmed] for s in self.sets.values()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def update(self, meta: FrameMeta, detections: Detections) -> TrackStep:
        _check_detections(detections)
        ts = float(meta.timestamp)
        if self.last_timestamp is not None and not ts > self.last_timestamp:
            raise TrackerInputError(
                f"frame {meta.frame_index} timestamp {ts} is not after the previous frame's {self.last_timestamp}"
            )
        dt = 1.0 if self.last_timestamp is None else (ts - self.last_timestamp) * self.fps
        self.last_timestamp = ts
        self.frames += 1

        outputs: list[TrackedObjects] = []
        ended: list[np.ndarray] = []
        class_ids = np.unique(np.concatenate([np.fromiter(self.sets, dtype=np.int64),
                                              detections.class_ids.astype(np.int64)]))
        for cid in class_ids.tolist():
            tracks = self.sets.setdefault(cid, TrackSet())
            objects, gone = self._update_class(tracks, cid, detections.select(detections.class_ids == cid),
                                               ts, dt, meta.width, meta.height)
            outputs.append(objects)
            ended.append(gone)
            if len(tracks) == 0:
                del self.sets[cid]
        objects = _concat_tracked(outputs)
        return TrackStep(objects, np.concatenate(ended) if ended else np.zeros(0, dtype=np.int64))

    def _update_class(
        self, tracks: TrackSet, cid: int, dets: Detections, ts: float, dt: float, width: int, height: int
    ) -> tuple[TrackedObjects, np.ndarray]:
        cfg = self.config
        # Lost tracks do not keep growing or shrinking while nothing measures them.
        tracks.mean[~tracks.tracked, 6:8] = 0.0
        tracks.mean, tracks.cov = kalman.predict(tracks.mean, tracks.cov, dt, self.noise)
        predicted = cxcywh_to_xyxy(tracks.mean[:, :4])

        keep = dets.scores >= cfg.low_score
        high = np.flatnonzero(keep & (dets.scores >= cfg.high_score))
        low = np.flatnonzero(keep & (dets.scores < cfg.high_score))
        matched_track = np.full(len(tracks), -1, dtype=np.int64)  # detection row per track

        confirmed = np.flatnonzero(tracks.confirmed)
        # 1. high-score detections with every confirmed track (tracked and lost)
        pairs, free_tracks, free_high = assign(iou_matrix(predicted[confirmed], dets.boxes[high]), cfg.min_iou_first)
        matched_track[confirmed[pairs[:, 0]]] = high[pairs[:, 1]]
        free_high = high[free_high]
        # 2. candidates with the remaining high-score detections; the rest may start candidates
        candidates = np.flatnonzero(~tracks.confirmed)
        # A candidate's velocity is unknown: compare buffered boxes so an object that moved more
        # than its own width can still be followed (C-BIoU).
        pairs, free_candidates, rest = assign(
            iou_matrix(expand(predicted[candidates], cfg.candidate_buffer), expand(dets.boxes[free_high], cfg.candidate_buffer)),
            cfg.min_iou_candidate,
        )
        matched_track[candidates[pairs[:, 0]]] = free_high[pairs[:, 1]]
        births = free_high[rest]
        births = births[dets.scores[births] >= cfg.birth_score]
        # 3. low-score detections with every track still unmatched (tracked, lost or candidate); the
        #    stricter IoU keeps a low-score false positive from taking over a track
        second = np.concatenate([confirmed[free_tracks], candidates[free_candidates]])
        pairs, _, _ = assign(iou_matrix(predicted[second], dets.boxes[low]), cfg.min_iou_second)
        matched_track[second[pairs[:, 0]]] = low[pairs[:, 1]]

        # Kalman update of matched tracks
        hit = matched_track >= 0
        rows = matched_track[hit]
        z = xyxy_to_cxcywh(dets.boxes[rows])
        tracks.mean[hit], tracks.cov[hit] = kalman.update(tracks.mean[hit], tracks.cov[hit], z, self.noise)
        tracks.hits[hit] += 1
        tracks.hits[~hit] = 0
        tracks.last_seen[hit] = ts
        tracks.tracked = hit
        tracks.score[hit] = dets.scores[rows]
        tracks.angle[hit] = dets.angles[rows]
        tracks.box[hit] = dets.boxes[rows]
        detected = hit.copy()

        # Removal: candidates on a miss; tracks lost too long or predicted wholly outside the image.
        pred_now = cxcywh_to_xyxy(tracks.mean[:, :4])
        outside = (pred_now[:, 2] <= 0) | (pred_now[:, 0] >= width) | (pred_now[:, 3] <= 0) | (pred_now[:, 1] >= height)
        expired = (ts - tracks.last_seen) > cfg.lost_buffer_s + TIME_EPS
        remove = np.where(tracks.confirmed, ~hit & (expired | outside), ~hit)
        gone = tracks.ids[remove & tracks.confirmed]
        tracks.keep(~remove)
        detected = detected[~remove]
        pred_now = pred_now[~remove]

        # Births, then confirmation (a new candidate is confirmed at once when confirm_hits == 1).
        if births.size:
            mean, cov = kalman.initiate(xyxy_to_cxcywh(dets.boxes[births]), self.noise)
            n = births.size
            tracks.extend(TrackSet(
                ids=np.full(n, UNCONFIRMED, dtype=np.int64), mean=mean, cov=cov,
                hits=np.ones(n, dtype=np.int64), last_seen=np.full(n, ts), tracked=np.ones(n, dtype=bool),
                score=dets.scores[births].astype(np.float32), angle=dets.angles[births].astype(np.float32),
                box=dets.boxes[births].astype(np.float32),
            ))
            detected = np.concatenate([detected, np.ones(n, dtype=bool)])
            pred_now = np.concatenate([pred_now, cxcywh_to_xyxy(mean[:, :4])])
        for i in np.flatnonzero(~tracks.confirmed & (tracks.hits >= cfg.confirm_hits)).tolist():
            tracks.ids[i] = self.ids.next_id()

        recent = (ts - tracks.last_seen) <= cfg.predicted_output_s + TIME_EPS
        report = tracks.confirmed & (detected | recent)
        boxes = np.where(detected[:, None], tracks.box, pred_now).astype(np.float32)[report]
        objects = TrackedObjects(
            track_ids=tracks.ids[report].copy(),
            class_ids=np.full(int(report.sum()), cid, dtype=np.int16),
            boxes=boxes,
            scores=tracks.score[report].copy(),
            angles=tracks.angle[report].copy(),
            detected=detected[report].copy(),
        )
        return objects, gone


def _concat_tracked(parts: list[TrackedObjects]) -> TrackedObjects:
    if not parts:
        return TrackedObjects()
    return TrackedObjects(
        track_ids=np.concatenate([p.track_ids for p in parts]).astype(np.int64),
        class_ids=np.concatenate([p.class_ids for p in parts]).astype(np.int16),
        boxes=np.concatenate([p.boxes for p in parts]).astype(np.float32).reshape(-1, 4),
        scores=np.concatenate([p.scores for p in parts]).astype(np.float32),
        angles=np.concatenate([p.angles for p in parts]).astype(np.float32),
        detected=np.concatenate([p.detected for p in parts]).astype(bool),
    )
