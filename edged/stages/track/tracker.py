"""ByteTrack-style multi-class tracker: one track set per class, all stored in stacked arrays.

Every class has its own track set: a detection can only ever match a track of its own class. The
sets live together in one :class:`TrackSet` (one row per track, a class column), so a frame costs a
fixed number of numpy calls however many classes are present; association costs between different
classes are infinite, which makes each assignment block-diagonal, i.e. exactly the per-class one.

Per frame: Kalman-predict every track; (1) associate high-score detections with all confirmed tracks
(tracked and lost) by IoU; (2) extend unconfirmed candidates with the remaining high-score detections
(buffered IoU, since a candidate's velocity is unknown) and start candidates from what is left
(score >= ``birth_score``; faces and plates have their own, lower ``sensitive_high_score`` and
``sensitive_birth_score``); (3) associate low-score detections with every track and candidate still
unmatched (stricter IoU). A candidate becomes a track, with its persistent id, after
``confirm_hits`` consecutive matches; candidates are removed on their first miss, tracks when lost
for more than ``lost_buffer_s`` or predicted wholly outside the image. A track leaving through a
border is never paired with a detection larger than what is left of it there (another object
entering at that border; ``leaving_growth``). Assignment: Jonker-Volgenant (``lap.lapjv``) on
``1 - IoU`` with a cost limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import lap
import numpy as np

from edged.config import TrackConfig
from edged.core.classes import CLASS_NAMES, SENSITIVE_IDS
from edged.core.geometry import (
    clip_boxes,
    cxcywh_to_xyxy,
    expand,
    full_size,
    iou_f64,
    leaving,
    leaving_mismatch,
    xyxy_to_cxcywh,
)
from edged.core.types import Detections, FrameMeta, TrackedObjects
from edged.stages.track import kalman
from edged.stages.track.ids import IdSource

__all__ = ["MIN_INSIDE", "TIME_EPS", "UNCONFIRMED", "TrackSet", "TrackStep", "Tracker", "TrackerInputError", "assign"]

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
        return _NO_PAIRS, np.arange(n), np.arange(m)
    cost = 1.0 - iou
    # The small slack lets IoU == min_iou match (lapjv excludes costs equal to the limit).
    limit = 1.0 - min_iou + 1e-9
    pairs = _unique_pairs(cost, limit)
    if pairs is None:
        _, row_to_col, col_to_row = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
        rows = (row_to_col >= 0).nonzero()[0]
        return (np.stack((rows, row_to_col[rows]), axis=1).astype(np.int64), (row_to_col < 0).nonzero()[0],
                (col_to_row < 0).nonzero()[0])
    rows, cols = pairs
    if not rows:
        return _NO_PAIRS, np.arange(n), np.arange(m)
    taken_rows, taken_cols = set(rows), set(cols)
    return (np.array([rows, cols], dtype=np.int64).T.reshape(-1, 2),
            np.array([i for i in range(n) if i not in taken_rows], dtype=np.int64),
            np.array([j for j in range(m) if j not in taken_cols], dtype=np.int64))


def _unique_pairs(cost: np.ndarray, limit: float) -> tuple[list[int], list[int]] | None:
    """The pairs under ``limit`` when no row or column has two of them (nor one at the limit): then taking
    them all is the only optimal assignment, which is what lapjv would return. None otherwise."""
    rows_arr, cols_arr = (cost <= limit).nonzero()
    if rows_arr.size != np.count_nonzero(cost < limit):
        return None
    rows, cols = rows_arr.tolist(), cols_arr.tolist()
    if len(set(rows)) < len(rows) or len(set(cols)) < len(cols):
        return None
    return rows, cols


_NO_PAIRS = np.zeros((0, 2), dtype=np.int64)
_NO_ROWS = np.zeros(0, dtype=np.int64)
_NO_PAIRS.flags.writeable = _NO_ROWS.flags.writeable = False  # shared: never written
_ALL = slice(None)
"""Every row (a view, where an index array of all rows would gather a copy)."""


BOX, SCORE, ANGLE, CLS, FULL, LAST_SEEN, HITS, FIRST = slice(0, 4), 4, 5, 6, slice(7, 9), 9, 10, 11
"""Columns of :attr:`TrackSet.obs`; the first seven are those of a detection row (:func:`_detection_rows`)."""
OBS_COLUMNS = 12


@dataclass(slots=True)
class TrackSet:
    """Tracks and candidates, one row each (all classes; the ``cls`` column says which set a row belongs to)."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 4)))
    """Kalman covariance as ``(N, 3, 4)`` blocks (:func:`~edged.stages.track.kalman.predict_blocks`)."""
    obs: np.ndarray = field(default_factory=lambda: np.zeros((0, OBS_COLUMNS)))
    """Per row, in float64: last matched detection box, its score and angle, the class, the width and height
    of the object wholly in view (:func:`~edged.core.geometry.full_size`), the timestamp of the last match,
    the number of consecutive frames matched (reset by a miss) and the score the track started with."""
    tracked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Matched in the previous frame (ByteTrack's Tracked state); False while lost."""

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def confirmed(self) -> np.ndarray:
        return self.ids != UNCONFIRMED

    @property
    def cls(self) -> np.ndarray:
        return self.obs[:, CLS].astype(np.int16)

    @property
    def hits(self) -> np.ndarray:
        return self.obs[:, HITS].astype(np.int64)

    def keep(self, mask: np.ndarray) -> None:
        for f in _FIELDS:
            setattr(self, f, getattr(self, f).compress(mask, 0))

    def extend(self, other: TrackSet) -> None:
        for f in _FIELDS:
            setattr(self, f, np.concatenate([getattr(self, f), getattr(other, f)]))

    def of_class(self, class_id: int) -> np.ndarray:
        """Row indices of one class's track set."""
        return np.flatnonzero(self.obs[:, CLS] == class_id)


_FIELDS = tuple(f.name for f in fields(TrackSet))


def _detection_rows(dets: Detections) -> np.ndarray:
    """``(N, 7)`` float64 box, score, angle and class of each detection (the first columns of ``obs``)."""
    return np.concatenate([dets.boxes, dets.scores[:, None], dets.angles[:, None], dets.class_ids[:, None]],
                          axis=1, dtype=np.float64)


@dataclass(slots=True)
class TrackStep:
    """What one :meth:`Tracker.update` produced."""

    objects: TrackedObjects
    """Confirmed tracks matched in this frame (``detected=True``, detector's box) and lost ones within
    ``predicted_output_s`` (``detected=False``, Kalman-predicted box clipped to the image)."""
    ended_ids: np.ndarray
    """Ids of confirmed tracks removed in this frame (lost too long or predicted out of view)."""


def _check_shapes(dets: Detections) -> int:
    """The number of detections, or :class:`TrackerInputError` if the arrays' shapes do not fit together."""
    shape = dets.boxes.shape
    if len(shape) != 2 or shape[1] != 4:
        raise TrackerInputError(f"detections.boxes has shape {shape}, expected (N, 4)")
    n = shape[0]
    if not dets.scores.shape == dets.class_ids.shape == dets.angles.shape == (n,):
        name, arr = next((k, a) for k, a in (("scores", dets.scores), ("class_ids", dets.class_ids),
                                              ("angles", dets.angles)) if a.shape != (n,))
        raise TrackerInputError(f"detections.{name} has shape {arr.shape}, expected ({n},) to match boxes")
    return n


def _checked_rows(dets: Detections) -> np.ndarray:
    """The detections as :func:`_detection_rows`, or :class:`TrackerInputError` if they are malformed."""
    n = _check_shapes(dets)
    rows = _detection_rows(dets)
    if not n:
        return rows
    # in float64, a sum of float32 boxes and scores is finite exactly when every one of them is
    if not math.isfinite(rows[:, :SCORE + 1].sum()):
        raise TrackerInputError("detections contain NaN or infinite boxes or scores")
    cls = dets.class_ids
    if cls.min() < 0 or cls.max() >= len(CLASS_NAMES):
        bad = int(cls[(cls < 0) | (cls >= len(CLASS_NAMES))][0])
        raise TrackerInputError(f"detections contain class id {bad}; known ids are 0..{len(CLASS_NAMES) - 1}")
    return rows


class _Frame:
    """What the phases of one :meth:`Tracker.update` hand on to each other (index arrays are detection
    or track rows)."""

    __slots__ = ("dets", "det", "det_boxes", "ts", "width", "height", "predicted", "unclipped", "high", "low",
                 "matched", "confirmed_mask", "confirmed", "candidates", "iou", "free_tracks", "free_high",
                 "free_cand", "births", "hit", "every_hit")

    def __init__(self, dets: Detections, det: np.ndarray, det_boxes: np.ndarray, ts: float, width: int,
                 height: int) -> None:
        self.dets = dets
        self.det = det
        """Detection rows (:func:`_detection_rows`)."""
        self.det_boxes = det_boxes
        """Detection boxes in float64."""
        self.ts, self.width, self.height = ts, width, height
        self.predicted: np.ndarray
        """Per track: predicted box clipped to the image (read for unmatched tracks only after the update)."""
        self.unclipped: np.ndarray
        """Per track: predicted box, not clipped (read for unmatched tracks only after the update)."""
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
        self.every_hit = False
        """Whether every track was matched in this frame."""


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
        sensitive = np.isin(np.arange(len(CLASS_NAMES)), SENSITIVE_IDS)
        self.high_scores = np.where(sensitive, config.sensitive_high_score, config.high_score)
        """Per class id: the least score of a high (first-association) detection."""
        self.birth_scores = np.where(sensitive, config.sensitive_birth_score, config.birth_score)
        """Per class id: the least score that starts a candidate."""
        self.tracks = TrackSet()
        """Every track and candidate."""
        self.last_timestamp: float | None = None
        self.frames = 0

    def live_ids(self) -> np.ndarray:
        """Ids of all confirmed tracks (tracked or lost)."""
        return self.tracks.ids[self.tracks.confirmed].copy()

    def update(self, meta: FrameMeta, detections: Detections) -> TrackStep:
        det = _checked_rows(detections)
        ts = float(meta.timestamp)
        if self.last_timestamp is not None and not ts > self.last_timestamp:
            raise TrackerInputError(
                f"frame {meta.frame_index} timestamp {ts} is not after the previous frame's {self.last_timestamp}"
            )
        dt = 1.0 if self.last_timestamp is None else (ts - self.last_timestamp) * self.fps
        self.last_timestamp = ts
        self.frames += 1
        return self._step(detections, det, ts, dt, meta.width, meta.height)

    def _step(self, dets: Detections, det: np.ndarray, ts: float, dt: float, width: int, height: int) -> TrackStep:
        f = _Frame(dets, det, det[:, BOX], ts, width, height)
        self._predict(f, dt)
        self._split(f)
        if len(self.tracks) and len(dets):
            self._associate_confirmed(f)
            self._extend_candidates(f)
            self._associate_low(f)
        elif len(dets):
            f.births = f.high
        scores = dets.scores[f.births]  # compared in their own dtype, as with a plain number
        f.births = f.births[scores >= self.birth_scores.astype(scores.dtype)[dets.class_ids[f.births]]]
        self._update_matched(f)
        ended = self._remove(f)
        self._birth_and_confirm(f)
        return TrackStep(self._report(f), ended)

    def _predict(self, f: _Frame, dt: float) -> None:
        """Kalman-predict every track ``dt`` frames ahead and keep its box, unclipped and clipped to the image."""
        tracks = self.tracks
        # Lost tracks do not keep growing or shrinking while nothing measures them.
        lost = (~tracks.tracked).nonzero()[0]
        if lost.size:
            tracks.mean[lost, 6:8] = 0.0
        kalman.predict_blocks(tracks.mean, tracks.cov, dt, self.noise)
        # Detections never extend past the image, so neither do the boxes they are compared with.
        f.unclipped = cxcywh_to_xyxy(tracks.mean[:, :4])
        f.predicted = clip_boxes(f.unclipped, f.width, f.height)

    def _split(self, f: _Frame) -> None:
        """Split the detections into high- and low-score rows and the tracks into confirmed ones and candidates."""
        cfg, scores = self.config, f.dets.scores
        is_high = (scores >= self.high_scores.astype(scores.dtype)[f.dets.class_ids]) & (scores >= cfg.low_score)
        f.high = is_high.nonzero()[0]
        f.low = ((scores >= cfg.low_score) & ~is_high).nonzero()[0]
        f.matched = np.full(len(self.tracks), -1, dtype=np.int64)
        f.confirmed_mask = self.tracks.ids != UNCONFIRMED
        f.confirmed = f.confirmed_mask.nonzero()[0]
        every = f.confirmed.size == len(self.tracks)
        f.candidates = _NO_ROWS if every else (~f.confirmed_mask).nonzero()[0]

    def _associate_confirmed(self, f: _Frame) -> None:
        """First association: high-score detections with every confirmed track (tracked and lost) by IoU."""
        cfg, tracks, confirmed, high = self.config, self.tracks, f.confirmed, f.high
        iou = iou_f64(f.predicted, f.det_boxes)
        iou[tracks.obs[:, CLS, None] != f.dets.class_ids[None, :]] = 0.0
        if confirmed.size:
            # a track leaving through a border never takes a newcomer entering there
            obs = tracks.obs.take(confirmed, 0)
            side = leaving(obs[:, BOX], obs[:, FULL], f.width, f.height)
            out = (side[:, 0] | side[:, 1]).nonzero()[0]
            if out.size:
                rows = confirmed[out]
                obs = obs.take(out, 0)
                other = leaving_mismatch(obs[:, BOX], obs[:, FULL], f.predicted.take(rows, 0), f.det_boxes,
                                         f.width, f.height, cfg.leaving_growth)
                iou[rows] = np.where(other, 0.0, iou.take(rows, 0))
        f.iou = iou
        sub = iou if confirmed.size == iou.shape[0] else iou.take(confirmed, 0)
        if high.size != iou.shape[1]:
            sub = sub.take(high, 1)
        pairs, f.free_tracks, free_high = assign(sub, cfg.min_iou_first)
        if pairs.size:
            f.matched[confirmed[pairs[:, 0]]] = high[pairs[:, 1]]
        f.free_high = high.take(free_high)

    def _extend_candidates(self, f: _Frame) -> None:
        """Match candidates with the remaining high-score detections (buffered IoU); the rest may start candidates."""
        cfg, tracks, candidates, free_high = self.config, self.tracks, f.candidates, f.free_high
        if not (candidates.size and free_high.size):
            f.free_cand, f.births = np.arange(candidates.size), free_high
            return
        cand_iou = iou_f64(expand(f.predicted.take(candidates, 0), cfg.candidate_buffer),
                           expand(f.det_boxes.take(free_high, 0), cfg.candidate_buffer))
        cand_iou[tracks.obs[:, CLS].take(candidates)[:, None] != f.dets.class_ids.take(free_high)[None, :]] = 0.0
        pairs, f.free_cand, rest = assign(cand_iou, cfg.min_iou_candidate)
        if pairs.size:
            f.matched[candidates[pairs[:, 0]]] = free_high[pairs[:, 1]]
        f.births = free_high[rest]

    def _associate_low(self, f: _Frame) -> None:
        """Second association: low-score detections with every track and candidate still unmatched (stricter IoU)."""
        low = f.low
        if not low.size:
            return
        free_rows = np.concatenate([f.confirmed[f.free_tracks], f.candidates[f.free_cand]])
        if not free_rows.size:
            return
        pairs, _, _ = assign(f.iou.take(free_rows, 0).take(low, 1), self.config.min_iou_second)
        if pairs.size:
            f.matched[free_rows[pairs[:, 0]]] = low[pairs[:, 1]]

    def _update_matched(self, f: _Frame) -> None:
        """Kalman-update the matched tracks with their detections and count hits (a miss resets them)."""
        tracks = self.tracks
        hit = f.matched >= 0
        n_hit = int(np.count_nonzero(hit))
        every = n_hit == len(tracks)
        obs = tracks.obs
        if n_hit:
            # when every track is matched, whole arrays stand in for the gathered rows
            idx: slice | np.ndarray
            if every:
                idx, det, old_mean, old_cov = _ALL, f.det.take(f.matched, 0), tracks.mean, tracks.cov
            else:
                rows = idx = hit.nonzero()[0]
                det = f.det.take(f.matched.take(rows), 0)
                old_mean, old_cov = tracks.mean.take(rows, 0), tracks.cov.take(rows, 0)
            boxes = det[:, BOX]
            mean, cov = kalman.update_blocks(old_mean, old_cov, xyxy_to_cxcywh(boxes), self.noise)
            tracks.mean[idx] = mean
            tracks.cov[idx] = cov
            obs[idx, :CLS] = det[:, :CLS]  # box, score, angle; the class stays the track's
            obs[idx, FULL] = full_size(obs[idx, FULL], boxes, f.width, f.height)
            obs[idx, LAST_SEEN] = f.ts
        hits = obs[:, HITS]
        hits += 1
        if not every:
            hits[~hit] = 0
        tracks.tracked = hit
        f.hit = hit
        f.every_hit = every

    def _remove(self, f: _Frame) -> np.ndarray:
        """Remove unmatched candidates and tracks lost too long or predicted wholly outside the image; their ids."""
        tracks = self.tracks
        if f.every_hit:
            return np.zeros(0, dtype=np.int64)
        miss = (~f.hit).nonzero()[0]
        box = f.unclipped.take(miss, 0)
        outside = (box[:, 2] <= 0) | (box[:, 3] <= 0) | (box[:, 0] >= f.width) | (box[:, 1] >= f.height)
        expired = (f.ts - tracks.obs[:, LAST_SEEN].take(miss)) > self.config.lost_buffer_s + TIME_EPS
        confirmed = f.confirmed_mask.take(miss)
        gone = ~confirmed | expired | outside
        ended = tracks.ids.take(miss.compress(gone & confirmed))
        if np.count_nonzero(gone):
            live = np.ones(len(tracks), dtype=bool)
            live[miss.compress(gone)] = False
            tracks.keep(live)
            f.hit = f.hit.compress(live)
            f.predicted, f.unclipped = f.predicted.compress(live, 0), f.unclipped.compress(live, 0)
        return ended

    def _birth_and_confirm(self, f: _Frame) -> None:
        """Start candidates from the births, then give an id to every candidate with ``confirm_hits`` hits."""
        tracks, births = self.tracks, f.births
        # a new candidate is confirmed at once when confirm_hits == 1
        if births.size:
            n = births.size
            det = f.det.take(births, 0)
            boxes = det[:, BOX]
            mean, cov = kalman.initiate_blocks(xyxy_to_cxcywh(boxes), self.noise)
            obs = np.empty((n, OBS_COLUMNS))
            obs[:, :FULL.start] = det
            obs[:, FULL] = full_size(np.zeros((n, 2)), boxes, f.width, f.height)
            obs[:, LAST_SEEN], obs[:, HITS], obs[:, FIRST] = f.ts, 1.0, det[:, SCORE]  # seen now, one hit
            born = np.ones(n, dtype=bool)
            tracks.extend(TrackSet(np.full(n, UNCONFIRMED, dtype=np.int64), mean, cov, obs, born))
            f.hit = np.concatenate([f.hit, born])
            if not f.every_hit:  # the boxes of new rows only fill their places (they are matched)
                f.predicted = np.concatenate([f.predicted, boxes])
                f.unclipped = np.concatenate([f.unclipped, boxes])
        ids = tracks.ids
        for i in ((ids == UNCONFIRMED) & (tracks.obs[:, HITS] >= self.config.confirm_hits)).nonzero()[0].tolist():
            ids[i] = self.ids.next_id()

    def _report(self, f: _Frame) -> TrackedObjects:
        """Confirmed tracks matched in this frame, and lost ones for a short while (boxes clipped, mostly inside)."""
        tracks, predicted, unclipped, hit = self.tracks, f.predicted, f.unclipped, f.hit
        obs = tracks.obs
        if f.every_hit:  # every track was matched: no predicted box to weigh
            report = tracks.ids != UNCONFIRMED
            out = obs.compress(report, 0)
            return TrackedObjects(
                track_ids=tracks.ids.compress(report),
                class_ids=out[:, CLS].astype(np.int16),
                boxes=out[:, BOX].astype(np.float32),
                scores=out[:, SCORE].astype(np.float32),
                angles=out[:, ANGLE].astype(np.float32),
                detected=hit.compress(report),
                first_scores=out[:, FIRST].astype(np.float32),
            )
        full_area = np.maximum((unclipped[:, 2] - unclipped[:, 0]) * (unclipped[:, 3] - unclipped[:, 1]), 1e-9)
        inside = (predicted[:, 2] - predicted[:, 0]) * (predicted[:, 3] - predicted[:, 1]) / full_area
        recent = ((f.ts - obs[:, LAST_SEEN]) <= self.config.predicted_output_s + TIME_EPS) & (inside >= MIN_INSIDE)
        report = (tracks.ids != UNCONFIRMED) & (hit | recent)
        boxes = np.where(hit[:, None], obs[:, BOX], predicted).compress(report, 0).astype(np.float32)
        out = obs.compress(report, 0)
        return TrackedObjects(
            track_ids=tracks.ids.compress(report),
            class_ids=out[:, CLS].astype(np.int16),
            boxes=boxes,
            scores=out[:, SCORE].astype(np.float32),
            angles=out[:, ANGLE].astype(np.float32),
            detected=hit.compress(report),
            first_scores=out[:, FIRST].astype(np.float32),
        )
