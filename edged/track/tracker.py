"""ByteTrack-style multi-class tracker (SPEC S3): one track set per class, all stored in stacked arrays.

Every class has its own track set: a detection can only ever match a track of its own class. The
sets live together in one :class:`TrackSet` (one row per track, a class column), so a frame costs a
fixed number of numpy calls however many classes are present; association costs between different
classes are infinite, which makes each assignment block-diagonal, i.e. exactly the per-class one.

Per frame: Kalman-predict every track; (1) associate high-score detections with all confirmed tracks
(tracked and lost) by IoU; (2) extend unconfirmed candidates with the remaining high-score detections
(buffered IoU, since a candidate's velocity is unknown) and start candidates from what is left
(score >= ``birth_score``); (3) associate low-score detections with every track and candidate still
unmatched (stricter IoU). A candidate becomes a track, with its persistent id, after
``confirm_hits`` consecutive matches; candidates are removed on their first miss, tracks when lost
for more than ``lost_buffer_s`` or predicted wholly outside the image. A track leaving through a
border is never paired with a detection larger than what is left of it there (another object
entering at that border; ``leaving_growth``). Assignment: Jonker-Volgenant (``lap.lapjv``) on
``1 - IoU`` with a cost limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import lap
import numpy as np

from edged.classes import CLASS_NAMES
from edged.config import TrackConfig
from edged.track import kalman
from edged.track.geometry import clip_boxes, cxcywh_to_xyxy, expand, full_size, iou_matrix, leaving_mismatch, xyxy_to_cxcywh
from edged.track.ids import IdSource
from edged.types import Detections, FrameMeta, TrackedObjects

UNCONFIRMED = -1
"""Track id of a candidate that has not yet been confirmed."""
TIME_EPS = 1e-6
"""Slack on time windows: epoch timestamps in float64 carry ~1e-7 s of rounding."""
MIN_INSIDE = 0.25
"""A predicted box is reported only while at least this fraction of it is inside the image."""


class TrackerInputError(ValueError):
    """The detections or frame metadata given to the tracker are malformed; nothing was changed."""


def assign(iou: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of rows to columns with IoU >= ``min_iou``.

    Returns ``(pairs (K, 2), unmatched_rows, unmatched_cols)``.
    """
    n, m = iou.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), dtype=np.int64), np.arange(n), np.arange(m)
    # The small slack lets IoU == min_iou match (lapjv excludes costs equal to the limit).
    _, row_to_col, col_to_row = lap.lapjv(1.0 - iou, extend_cost=True, cost_limit=1.0 - min_iou + 1e-9)
    rows = np.flatnonzero(row_to_col >= 0)
    pairs = np.column_stack([rows, row_to_col[rows]]).astype(np.int64)
    return pairs, np.flatnonzero(row_to_col < 0), np.flatnonzero(col_to_row < 0)


@dataclass(slots=True)
class TrackSet:
    """Tracks and candidates, one row each (all classes; ``cls`` says which set a row belongs to)."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cls: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
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
    full: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    """Width and height of the object wholly in view (:func:`~edged.track.geometry.full_size`)."""

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def confirmed(self) -> np.ndarray:
        return self.ids != UNCONFIRMED

    def keep(self, mask: np.ndarray) -> None:
        for f in _FIELDS:
            setattr(self, f, getattr(self, f)[mask])

    def extend(self, other: TrackSet) -> None:
        for f in _FIELDS:
            setattr(self, f, np.concatenate([getattr(self, f), getattr(other, f)]))

    def of_class(self, class_id: int) -> np.ndarray:
        """Row indices of one class's track set."""
        return np.flatnonzero(self.cls == class_id)


_FIELDS = tuple(f.name for f in fields(TrackSet))


@dataclass(slots=True)
class TrackStep:
    """What one :meth:`Tracker.update` produced."""

    objects: TrackedObjects
    """Confirmed tracks matched in this frame (``detected=True``, detector's box) and lost ones within
    ``predicted_output_s`` (``detected=False``, Kalman-predicted box clipped to the image)."""
    ended_ids: np.ndarray
    """Ids of confirmed tracks removed in this frame (lost too long or predicted out of view)."""


def _check_detections(dets: Detections) -> None:
    n = len(dets)
    if dets.boxes.ndim != 2 or dets.boxes.shape[1] != 4:
        raise TrackerInputError(f"detections.boxes has shape {dets.boxes.shape}, expected (N, 4)")
    for name in ("scores", "class_ids", "angles"):
        arr = getattr(dets, name)
        if arr.shape != (n,):
            raise TrackerInputError(f"detections.{name} has shape {arr.shape}, expected ({n},) to match boxes")
    if n and not (np.isfinite(dets.boxes).all() and np.isfinite(dets.scores).all()):
        raise TrackerInputError("detections contain NaN or infinite boxes or scores")
    if n and ((dets.class_ids < 0).any() or (dets.class_ids >= len(CLASS_NAMES)).any()):
        bad = int(dets.class_ids[(dets.class_ids < 0) | (dets.class_ids >= len(CLASS_NAMES))][0])
        raise TrackerInputError(f"detections contain class id {bad}; known ids are 0..{len(CLASS_NAMES) - 1}")


def _same_class_iou(a_boxes: np.ndarray, a_cls: np.ndarray, b_boxes: np.ndarray, b_cls: np.ndarray) -> np.ndarray:
    iou = iou_matrix(a_boxes, b_boxes)
    iou[a_cls[:, None] != b_cls[None, :]] = 0.0
    return iou


class _Frame:
    """What the phases of one :meth:`Tracker.update` hand on to each other (index arrays are detection
    or track rows)."""

    __slots__ = ("dets", "det_boxes", "ts", "width", "height", "predicted", "unclipped", "high", "low", "matched",
                 "confirmed_mask", "confirmed", "candidates", "iou", "free_tracks", "free_high", "free_cand",
                 "births", "hit")

    def __init__(self, dets: Detections, det_boxes: np.ndarray, ts: float, width: int, height: int) -> None:
        self.dets = dets
        self.det_boxes = det_boxes
        """Detection boxes in float64."""
        self.ts, self.width, self.height = ts, width, height
        self.predicted: np.ndarray
        """Per track: predicted box clipped to the image (after the update: the updated box)."""
        self.unclipped: np.ndarray
        """Per track: predicted box, not clipped (after the update: the matched detection's box)."""
        self.high: np.ndarray
        self.low: np.ndarray
        self.matched: np.ndarray
        """Detection row per track, -1 where none."""
        self.confirmed_mask: np.ndarray
        self.confirmed: np.ndarray
        self.candidates: np.ndarray
        self.iou: np.ndarray
        """Track x detection IoU (0 across classes, and for a leaving track against a newcomer)."""
        self.free_tracks: np.ndarray
        self.free_high: np.ndarray
        self.free_cand: np.ndarray
        self.births = np.zeros(0, dtype=np.int64)
        self.hit: np.ndarray


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
        self.tracks = TrackSet()
        self.last_timestamp: float | None = None
        self.frames = 0

    def live_ids(self) -> np.ndarray:
        """Ids of all confirmed tracks (tracked or lost)."""
        return self.tracks.ids[self.tracks.confirmed].copy()

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
        return self._step(detections, ts, dt, meta.width, meta.height)

    def _step(self, dets: Detections, ts: float, dt: float, width: int, height: int) -> TrackStep:
        f = _Frame(dets, dets.boxes.astype(np.float64), ts, width, height)
        self._predict(f, dt)
        self._split(f)
        if len(self.tracks) and len(dets):
            self._associate_confirmed(f)
            self._extend_candidates(f)
            self._associate_low(f)
        elif len(dets):
            f.births = f.high
        f.births = f.births[dets.scores[f.births] >= self.config.birth_score]
        self._update_matched(f)
        ended = self._remove(f)
        self._birth_and_confirm(f)
        return TrackStep(self._report(f), ended)

    def _predict(self, f: _Frame, dt: float) -> None:
        """Kalman-predict every track ``dt`` frames ahead and keep its box, unclipped and clipped to the image."""
        tracks = self.tracks
        # Lost tracks do not keep growing or shrinking while nothing measures them.
        tracks.mean[~tracks.tracked, 6:8] = 0.0
        tracks.mean, tracks.cov = kalman.predict(tracks.mean, tracks.cov, dt, self.noise)
        # Detections never extend past the image, so neither do the boxes they are compared with.
        f.unclipped = cxcywh_to_xyxy(tracks.mean[:, :4])
        f.predicted = clip_boxes(f.unclipped, f.width, f.height)

    def _split(self, f: _Frame) -> None:
        """Split the detections into high- and low-score rows and the tracks into confirmed ones and candidates."""
        cfg, scores = self.config, f.dets.scores
        keep = scores >= cfg.low_score
        is_high = scores >= cfg.high_score
        f.high = np.flatnonzero(keep & is_high)
        f.low = np.flatnonzero(keep & ~is_high)
        f.matched = np.full(len(self.tracks), -1, dtype=np.int64)
        f.confirmed_mask = self.tracks.confirmed
        f.confirmed = np.flatnonzero(f.confirmed_mask)
        f.candidates = np.flatnonzero(~f.confirmed_mask)

    def _associate_confirmed(self, f: _Frame) -> None:
        """First association: high-score detections with every confirmed track (tracked and lost) by IoU."""
        cfg, tracks, confirmed = self.config, self.tracks, f.confirmed
        iou = _same_class_iou(f.predicted, tracks.cls, f.det_boxes, f.dets.class_ids)
        if confirmed.size:
            # a track leaving through a border never takes a newcomer entering there
            other = leaving_mismatch(tracks.box[confirmed], tracks.full[confirmed], f.predicted[confirmed],
                                     f.det_boxes, f.width, f.height, cfg.leaving_growth)
            iou[confirmed] = np.where(other, 0.0, iou[confirmed])
        f.iou = iou
        pairs, f.free_tracks, free_high = assign(iou[np.ix_(confirmed, f.high)], cfg.min_iou_first)
        f.matched[confirmed[pairs[:, 0]]] = f.high[pairs[:, 1]]
        f.free_high = f.high[free_high]

    def _extend_candidates(self, f: _Frame) -> None:
        """Match candidates with the remaining high-score detections (buffered IoU); what is left may start candidates."""
        cfg, tracks, candidates, free_high = self.config, self.tracks, f.candidates, f.free_high
        cand_iou = _same_class_iou(expand(f.predicted[candidates], cfg.candidate_buffer), tracks.cls[candidates],
                                   expand(f.det_boxes[free_high], cfg.candidate_buffer), f.dets.class_ids[free_high])
        pairs, f.free_cand, rest = assign(cand_iou, cfg.min_iou_candidate)
        f.matched[candidates[pairs[:, 0]]] = free_high[pairs[:, 1]]
        f.births = free_high[rest]

    def _associate_low(self, f: _Frame) -> None:
        """Second association: low-score detections with every track and candidate still unmatched (stricter IoU)."""
        free_rows = np.concatenate([f.confirmed[f.free_tracks], f.candidates[f.free_cand]])
        pairs, _, _ = assign(f.iou[np.ix_(free_rows, f.low)], self.config.min_iou_second)
        f.matched[free_rows[pairs[:, 0]]] = f.low[pairs[:, 1]]

    def _update_matched(self, f: _Frame) -> None:
        """Kalman-update the matched tracks with their detections and count hits (a miss resets them)."""
        tracks, dets = self.tracks, f.dets
        hit = f.matched >= 0
        rows = f.matched[hit]
        if rows.size:
            det_boxes = f.det_boxes
            tracks.mean[hit], tracks.cov[hit] = kalman.update(
                tracks.mean[hit], tracks.cov[hit], xyxy_to_cxcywh(det_boxes[rows]), self.noise
            )
            tracks.last_seen[hit] = f.ts
            tracks.score[hit] = dets.scores[rows]
            tracks.angle[hit] = dets.angles[rows]
            tracks.box[hit] = dets.boxes[rows]
            tracks.full[hit] = full_size(tracks.full[hit], det_boxes[rows], f.width, f.height)
            f.predicted[hit] = clip_boxes(cxcywh_to_xyxy(tracks.mean[hit, :4]), f.width, f.height)
            f.unclipped[hit] = det_boxes[rows]
        tracks.hits = np.where(hit, tracks.hits + 1, 0)
        tracks.tracked = hit
        f.hit = hit

    def _remove(self, f: _Frame) -> np.ndarray:
        """Remove unmatched candidates and tracks lost too long or predicted wholly outside the image; their ids."""
        cfg, tracks, unclipped, width, height = self.config, self.tracks, f.unclipped, f.width, f.height
        outside = (unclipped[:, 2] <= 0) | (unclipped[:, 0] >= width) | (unclipped[:, 3] <= 0) | (unclipped[:, 1] >= height)
        expired = (f.ts - tracks.last_seen) > cfg.lost_buffer_s + TIME_EPS
        remove = ~f.hit & np.where(f.confirmed_mask, expired | outside, True)
        ended = tracks.ids[remove & f.confirmed_mask]
        if remove.any():
            live = ~remove
            tracks.keep(live)
            f.hit, f.predicted, f.unclipped = f.hit[live], f.predicted[live], f.unclipped[live]
        return ended

    def _birth_and_confirm(self, f: _Frame) -> None:
        """Start candidates from the births, then give an id to every candidate with ``confirm_hits`` hits."""
        tracks, dets, births, cfg = self.tracks, f.dets, f.births, self.config
        # a new candidate is confirmed at once when confirm_hits == 1
        if births.size:
            n = births.size
            det_boxes = f.det_boxes
            mean, cov = kalman.initiate(xyxy_to_cxcywh(det_boxes[births]), self.noise)
            tracks.extend(TrackSet(
                ids=np.full(n, UNCONFIRMED, dtype=np.int64), cls=dets.class_ids[births].astype(np.int16), mean=mean,
                cov=cov, hits=np.ones(n, dtype=np.int64), last_seen=np.full(n, f.ts), tracked=np.ones(n, dtype=bool),
                score=dets.scores[births].astype(np.float32), angle=dets.angles[births].astype(np.float32),
                box=dets.boxes[births].astype(np.float32),
                full=full_size(np.zeros((n, 2)), det_boxes[births], f.width, f.height),
            ))
            f.hit = np.concatenate([f.hit, np.ones(n, dtype=bool)])
            f.predicted = np.concatenate([f.predicted, det_boxes[births]])
            f.unclipped = np.concatenate([f.unclipped, det_boxes[births]])
        for i in np.flatnonzero((tracks.ids == UNCONFIRMED) & (tracks.hits >= cfg.confirm_hits)).tolist():
            tracks.ids[i] = self.ids.next_id()

    def _report(self, f: _Frame) -> TrackedObjects:
        """Confirmed tracks matched in this frame, and lost ones for a short while (boxes clipped, mostly inside)."""
        tracks, predicted, unclipped, hit = self.tracks, f.predicted, f.unclipped, f.hit
        full_area = np.maximum((unclipped[:, 2] - unclipped[:, 0]) * (unclipped[:, 3] - unclipped[:, 1]), 1e-9)
        inside = (predicted[:, 2] - predicted[:, 0]) * (predicted[:, 3] - predicted[:, 1]) / full_area
        recent = ((f.ts - tracks.last_seen) <= self.config.predicted_output_s + TIME_EPS) & (inside >= MIN_INSIDE)
        report = (tracks.ids != UNCONFIRMED) & (hit | recent)
        boxes = np.where(hit[:, None], tracks.box, predicted)[report].astype(np.float32)
        return TrackedObjects(
            track_ids=tracks.ids[report],
            class_ids=tracks.cls[report],
            boxes=boxes,
            scores=tracks.score[report],
            angles=tracks.angle[report],
            detected=hit[report],
        )
