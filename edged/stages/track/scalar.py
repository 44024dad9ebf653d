"""The tracker's frame step on Python floats, one track at a time, for frames with few tracks and detections.

A numpy call costs about a microsecond whatever the size of its arrays, and :class:`~edged.stages.track.tracker.Tracker`'s
array step makes some two hundred of them a frame: with a handful of objects that overhead is the whole cost.
:class:`ScalarTracks` does the same step (same phases, same order of tracks and detections) with the same
float64 operations in the same order, so its output is bit-identical to the array step's. Two numpy details
are reproduced on purpose: ``np.minimum(a, b)`` / ``np.maximum(a, b)`` return ``b`` on a tie (which only
tells apart ``0.0`` and ``-0.0``; written here as ``a if a < b else b`` and ``a if a > b else b``), and a
float32 score compared with a Python float threshold is compared in float32 (numpy's weak scalars), so the
thresholds here are rounded to the scores' dtype first.
"""

from __future__ import annotations

import math

import lap
import numpy as np

from edged.config import TrackConfig
from edged.core.geometry import BORDER_PX, LEAVING_SLACK
from edged.stages.track.ids import IdSource
from edged.stages.track.kalman import KalmanNoise

UNCONFIRMED = -1
"""Track id of a candidate that has not yet been confirmed."""
TIME_EPS = 1e-6
"""Slack on time windows: epoch timestamps in float64 carry ~1e-7 s of rounding."""
MIN_INSIDE = 0.25
"""A predicted box is reported only while at least this fraction of it is inside the image."""

Box = tuple[float, float, float, float]
Entry = tuple[int, int, float]
"""``(row, column, IoU)`` of one non-zero cell of an IoU matrix."""


class Row:
    """One track or candidate: the state the array step keeps in one row of each ``TrackSet`` array."""

    __slots__ = ("id", "mean", "cov", "box", "score", "angle", "cls", "full_w", "full_h", "last_seen", "hits",
                 "tracked", "pred", "unclipped", "match", "leave")

    def __init__(self, id_: int, mean: list[float], cov: list[float], obs: list[float], tracked: bool) -> None:
        self.id = id_
        self.mean = mean
        """``cx, cy, w, h, vcx, vcy, vw, vh``."""
        self.cov = cov
        """The ``(3, 4)`` block covariance flattened: position variances, cross terms, velocity variances."""
        self.box: Box = (obs[0], obs[1], obs[2], obs[3])
        self.score, self.angle, self.cls = obs[4], obs[5], int(obs[6])
        self.full_w, self.full_h, self.last_seen, self.hits = obs[7], obs[8], obs[9], int(obs[10])
        self.tracked = tracked
        # per frame: predicted box clipped and not (after the update: updated box and detection), matched
        # detection (-1: none) and the leaving test ((left/right, top/bottom, width limit, height limit) or None)
        self.pred: Box = self.box
        self.unclipped: Box = self.box
        self.match = -1
        self.leave: tuple[bool, bool, float, float] | None = None

    def obs(self) -> list[float]:
        """The row of ``TrackSet.obs``."""
        return [*self.box, self.score, self.angle, float(self.cls), self.full_w, self.full_h, self.last_seen,
                float(self.hits)]


def _as_compared(threshold: float, dtype: np.dtype) -> float:
    """``threshold`` as numpy compares it with an array of ``dtype``: rounded to that float type (numpy's weak
    Python scalars; float32 scores meet a float32 threshold), unchanged for any other type."""
    return float(np.asarray(threshold, dtype=dtype)) if np.issubdtype(dtype, np.floating) else threshold


def _area(b: Box) -> float:
    """Area of a box, sides floored at 0 (as :func:`~edged.core.geometry.iou_f64`)."""
    w, h = b[2] - b[0], b[3] - b[1]
    return (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)


def _clip(x0: float, y0: float, x2: float, y2: float, w: float, h: float) -> Box:
    """:func:`~edged.core.geometry.clip_boxes` of one box."""
    x0 = x0 if x0 > 0.0 else 0.0
    y0 = y0 if y0 > 0.0 else 0.0
    x2 = x2 if x2 > 0.0 else 0.0
    y2 = y2 if y2 > 0.0 else 0.0
    return (x0 if x0 < w else w, y0 if y0 < h else h, x2 if x2 < w else w, y2 if y2 < h else h)


def _expand(b: Box, ratio: float) -> Box:
    """:func:`~edged.core.geometry.expand` of one box."""
    gw, gh = (b[2] - b[0]) * ratio, (b[3] - b[1]) * ratio
    return (b[0] - gw, b[1] - gh, b[2] + gw, b[3] + gh)


def _ious(rows: list[tuple[Box, float, int, tuple[bool, bool, float, float] | None]],
          cols: list[tuple[Box, float, int]], dense: bool) -> list[Entry]:
    """The non-zero cells, row-major, of the IoU matrix of ``(box, area, class, leaving test)`` rows against
    ``(box, area, class)`` columns, 0 across classes and where a leaving row cannot be the column; every cell
    when ``dense``."""
    out: list[Entry] = []
    for i, (a, area_a, cls_a, leave) in enumerate(rows):
        ax0, ay0, ax2, ay2 = a
        for j, (b, area_b, cls_b) in enumerate(cols):
            iou = 0.0
            if cls_a == cls_b:
                bx0, by0, bx2, by2 = b
                iw = (ax2 if ax2 < bx2 else bx2) - (ax0 if ax0 > bx0 else bx0)
                if iw > 0.0:
                    ih = (ay2 if ay2 < by2 else by2) - (ay0 if ay0 > by0 else by0)
                    if ih > 0.0 and not (leave is not None and ((leave[0] and bx2 - bx0 > leave[2])
                                                                or (leave[1] and by2 - by0 > leave[3]))):
                        inter = iw * ih
                        union = area_a + area_b - inter
                        if union > 0.0:
                            iou = inter / union
            if iou != 0.0 or dense:
                out.append((i, j, iou))
    return out


def _assign(entries: list[Entry], n: int, m: int, min_iou: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """:func:`~edged.stages.track.tracker.assign` on the ``n x m`` IoU matrix that is 0 outside ``entries``."""
    if n == 0 or m == 0:
        return [], list(range(n)), list(range(m))
    limit = 1.0 - min_iou + 1e-9
    pairs: list[tuple[int, int]] = []
    taken_rows: set[int] = set()
    taken_cols: set[int] = set()
    for i, j, iou in entries:
        cost = 1.0 - iou
        if cost <= limit:
            if i in taken_rows or j in taken_cols or not cost < limit:
                return _lapjv(entries, n, m, limit)
            pairs.append((i, j))
            taken_rows.add(i)
            taken_cols.add(j)
    return (pairs, [i for i in range(n) if i not in taken_rows], [j for j in range(m) if j not in taken_cols])


def _lapjv(entries: list[Entry], n: int, m: int, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """The optimal assignment when candidate pairs conflict: lapjv on the whole cost matrix, as the array step."""
    iou = np.zeros((n, m))
    for i, j, v in entries:
        iou[i, j] = v
    _, row_to_col, col_to_row = lap.lapjv(1.0 - iou, extend_cost=True, cost_limit=limit)
    r2c, c2r = row_to_col.tolist(), col_to_row.tolist()
    return ([(i, c) for i, c in enumerate(r2c) if c >= 0], [i for i, c in enumerate(r2c) if c < 0],
            [j for j, r in enumerate(c2r) if r < 0])


class _Dets:
    """One frame's detections as Python lists (boxes as tuples), with their areas."""

    __slots__ = ("boxes", "scores", "cls", "angles", "areas")

    def __init__(self, boxes: list[list[float]], scores: list[float], cls: list[int], angles: list[float]) -> None:
        self.boxes: list[Box] = [(b[0], b[1], b[2], b[3]) for b in boxes]
        self.scores, self.cls, self.angles = scores, cls, angles
        self.areas = [_area(b) for b in self.boxes]


class ScalarTracks:
    """The tracks of a :class:`~edged.stages.track.tracker.Tracker` as :class:`Row` objects, and its frame step on them."""

    def __init__(self, config: TrackConfig, ids: IdSource, noise: KalmanNoise, rows: list[Row]) -> None:
        self.config, self.ids, self.noise, self.rows = config, ids, noise, rows
        self._thresholds: dict[np.dtype, tuple[float, float, float]] = {}

    def thresholds(self, dtype: np.dtype) -> tuple[float, float, float]:
        """High, low and birth score thresholds as scores of ``dtype`` are compared with them."""
        out = self._thresholds.get(dtype)
        if out is None:
            cfg = self.config
            out = self._thresholds[dtype] = (_as_compared(cfg.high_score, dtype), _as_compared(cfg.low_score, dtype),
                                             _as_compared(cfg.birth_score, dtype))
        return out

    def step(self, boxes: list[list[float]], scores: list[float], cls: list[int], angles: list[float],
             score_dtype: np.dtype, ts: float, dt: float, width: int,
             height: int) -> tuple[tuple[list[int], list[int], list[Box], list[float], list[float], list[bool]],
                                   list[int]]:
        """One frame: ``((ids, classes, boxes, scores, angles, detected) reported, ended ids)``; ``score_dtype``
        is the dtype of the detector's scores (it sets how they are compared with the thresholds)."""
        w, h = float(width), float(height)
        dets = _Dets(boxes, scores, cls, angles)
        high_score, low_score, birth_score = self.thresholds(score_dtype)
        self._predict(dt, w, h)
        high, low, confirmed, candidates = self._split(dets, high_score, low_score)
        free_tracks, free_high = self._associate_confirmed(dets, confirmed, high, w, h)
        free_cand, births = self._extend_candidates(dets, candidates, free_high)
        self._associate_low(dets, free_tracks + free_cand, low)
        births = [j for j in births if scores[j] >= birth_score]
        self._update_matched(dets, ts, w, h)
        ended = self._remove(ts, w, h)
        self._birth_and_confirm(dets, births, ts, w, h)
        return self._report(ts), ended

    def _predict(self, dt: float, w: float, h: float) -> None:
        """Kalman-predict every track ``dt`` frames ahead and keep its box, unclipped and clipped to the image."""
        sp, sv = self.noise.std_position, self.noise.std_velocity
        step = dt if dt > 1e-6 else 1e-6  # max(dt, 1e-6)
        for r in self.rows:
            cx, cy, bw, bh, vx, vy, vw, vh = r.mean
            if not r.tracked:  # lost tracks do not keep growing or shrinking
                vw = vh = 0.0
            sw, sh = (bw if bw > 1.0 else 1.0), (bh if bh > 1.0 else 1.0)
            pw, ph, qw, qh = sw * sp, sh * sp, sw * sv, sh * sv
            pw, ph, qw, qh = pw * pw * step, ph * ph * step, qw * qw * step, qh * qh * step
            cx, cy, bw, bh = cx + dt * vx, cy + dt * vy, bw + dt * vw, bh + dt * vh
            r.mean = [cx, cy, bw, bh, vx, vy, vw, vh]
            p0, p1, p2, p3, c0, c1, c2, c3, v0, v1, v2, v3 = r.cov
            p0, p1, p2, p3 = p0 + dt * c0, p1 + dt * c1, p2 + dt * c2, p3 + dt * c3
            c0, c1, c2, c3 = c0 + dt * v0, c1 + dt * v1, c2 + dt * v2, c3 + dt * v3
            p0, p1, p2, p3 = p0 + dt * c0, p1 + dt * c1, p2 + dt * c2, p3 + dt * c3
            r.cov = [p0 + pw, p1 + ph, p2 + pw, p3 + ph, c0, c1, c2, c3, v0 + qw, v1 + qh, v2 + qw, v3 + qh]
            hw, hh = bw / 2, bh / 2
            x0, y0, x2, y2 = cx - hw, cy - hh, cx + hw, cy + hh
            r.unclipped = (x0, y0, x2, y2)
            r.pred = _clip(x0, y0, x2, y2, w, h)
            r.match = -1

    def _split(self, dets: _Dets, hs: float, ls: float) -> tuple[list[int], list[int], list[int], list[int]]:
        """Split the detections into high- and low-score ones and the tracks into confirmed ones and candidates."""
        if self.config.high_score >= self.config.low_score:
            high = [j for j, s in enumerate(dets.scores) if s >= hs]
        else:
            high = [j for j, s in enumerate(dets.scores) if s >= hs and s >= ls]
        low = [j for j, s in enumerate(dets.scores) if s >= ls and not s >= hs]
        confirmed, candidates = [], []
        for i, r in enumerate(self.rows):
            (candidates if r.id == UNCONFIRMED else confirmed).append(i)
        return high, low, confirmed, candidates

    def _associate_confirmed(self, dets: _Dets, confirmed: list[int], high: list[int], w: float,
                             h: float) -> tuple[list[int], list[int]]:
        """First association: high-score detections with every confirmed track (tracked and lost) by IoU."""
        rows, growth = self.rows, 1.0 + self.config.leaving_growth
        wx, hy = w - BORDER_PX, h - BORDER_PX
        for i in confirmed:
            r = rows[i]
            x0, y0, x2, y2 = r.box
            lw, lh = x2 - x0, y2 - y0
            # a track leaving through a border never takes a newcomer entering there
            out_x = (x0 <= BORDER_PX or x2 >= wx) and lw < LEAVING_SLACK * r.full_w - 1.0
            out_y = (y0 <= BORDER_PX or y2 >= hy) and lh < LEAVING_SLACK * r.full_h - 1.0
            if out_x or out_y:
                p = r.pred
                pw, ph = p[2] - p[0], p[3] - p[1]
                r.leave = (out_x, out_y, growth * (lw if lw < pw else pw), growth * (lh if lh < ph else ph))
            else:
                r.leave = None
        min_iou = self.config.min_iou_first
        entries = _ious([(rows[i].pred, _area(rows[i].pred), rows[i].cls, rows[i].leave) for i in confirmed],
                        [(dets.boxes[j], dets.areas[j], dets.cls[j]) for j in high], 1.0 - min_iou + 1e-9 >= 1.0)
        pairs, free_rows, free_cols = _assign(entries, len(confirmed), len(high), min_iou)
        for i, j in pairs:
            rows[confirmed[i]].match = high[j]
        return [confirmed[i] for i in free_rows], [high[j] for j in free_cols]

    def _extend_candidates(self, dets: _Dets, candidates: list[int],
                           free_high: list[int]) -> tuple[list[int], list[int]]:
        """Match candidates with the remaining high-score detections (buffered IoU); what is left may start candidates."""
        if not (candidates and free_high):
            return candidates, free_high
        rows, ratio, min_iou = self.rows, self.config.candidate_buffer, self.config.min_iou_candidate
        grown = [_expand(rows[i].pred, ratio) for i in candidates]
        det_grown = [_expand(dets.boxes[j], ratio) for j in free_high]
        entries = _ious([(b, _area(b), rows[i].cls, None) for i, b in zip(candidates, grown, strict=True)],
                        [(b, _area(b), dets.cls[j]) for j, b in zip(free_high, det_grown, strict=True)],
                        1.0 - min_iou + 1e-9 >= 1.0)
        pairs, free_rows, free_cols = _assign(entries, len(candidates), len(free_high), min_iou)
        for i, j in pairs:
            rows[candidates[i]].match = free_high[j]
        return [candidates[i] for i in free_rows], [free_high[j] for j in free_cols]

    def _associate_low(self, dets: _Dets, free: list[int], low: list[int]) -> None:
        """Second association: low-score detections with every track and candidate still unmatched (stricter IoU)."""
        if not (low and free):
            return
        rows, min_iou = self.rows, self.config.min_iou_second
        entries = _ious([(rows[i].pred, _area(rows[i].pred), rows[i].cls, rows[i].leave if rows[i].id != UNCONFIRMED
                          else None) for i in free],
                        [(dets.boxes[j], dets.areas[j], dets.cls[j]) for j in low], 1.0 - min_iou + 1e-9 >= 1.0)
        pairs, _, _ = _assign(entries, len(free), len(low), min_iou)
        for i, j in pairs:
            rows[free[i]].match = low[j]

    def _update_matched(self, dets: _Dets, ts: float, w: float, h: float) -> None:
        """Kalman-update the matched tracks with their detections and count hits (a miss resets them)."""
        sp = self.noise.std_position
        wx, hy = w - BORDER_PX, h - BORDER_PX
        for r in self.rows:
            j = r.match
            if j < 0:
                r.hits = 0
                r.tracked = False
                continue
            box = dets.boxes[j]
            x0, y0, x2, y2 = box
            zw, zh = x2 - x0, y2 - y0
            cx, cy, bw, bh, vx, vy, vw, vh = r.mean
            p0, p1, p2, p3, c0, c1, c2, c3, v0, v1, v2, v3 = r.cov
            rw, rh = (bw if bw > 1.0 else 1.0) * sp, (bh if bh > 1.0 else 1.0) * sp
            rw, rh = rw * rw, rh * rh  # measurement noise (the innovation covariance is diagonal)
            i0, i1, i2, i3 = 1.0 / (p0 + rw), 1.0 / (p1 + rh), 1.0 / (p2 + rw), 1.0 / (p3 + rh)
            g0, g1, g2, g3 = p0 * i0, p1 * i1, p2 * i2, p3 * i3  # position gains
            k0, k1, k2, k3 = c0 * i0, c1 * i1, c2 * i2, c3 * i3  # velocity gains
            e0, e1, e2, e3 = x0 + zw / 2 - cx, y0 + zh / 2 - cy, zw - bw, zh - bh  # residuals
            cx, cy, bw, bh = cx + g0 * e0, cy + g1 * e1, bw + g2 * e2, bh + g3 * e3
            r.mean = [cx, cy, bw, bh, vx + k0 * e0, vy + k1 * e1, vw + k2 * e2, vh + k3 * e3]
            # P - K H P; the two off-diagonal entries differ in floating point: their mean keeps P symmetric
            r.cov = [p0 - g0 * p0, p1 - g1 * p1, p2 - g2 * p2, p3 - g3 * p3,
                     ((c0 - g0 * c0) + (c0 - k0 * p0)) * 0.5, ((c1 - g1 * c1) + (c1 - k1 * p1)) * 0.5,
                     ((c2 - g2 * c2) + (c2 - k2 * p2)) * 0.5, ((c3 - g3 * c3) + (c3 - k3 * p3)) * 0.5,
                     v0 - k0 * c0, v1 - k1 * c1, v2 - k2 * c2, v3 - k3 * c3]
            r.box, r.score, r.angle = box, dets.scores[j], dets.angles[j]  # the class stays the track's
            fw, fh = r.full_w, r.full_h
            r.full_w = (fw if fw > zw else zw) if (x0 <= BORDER_PX or x2 >= wx) else zw
            r.full_h = (fh if fh > zh else zh) if (y0 <= BORDER_PX or y2 >= hy) else zh
            r.last_seen = ts
            hw, hh = bw / 2, bh / 2
            r.pred = _clip(cx - hw, cy - hh, cx + hw, cy + hh, w, h)
            r.unclipped = box
            r.hits += 1
            r.tracked = True

    def _remove(self, ts: float, w: float, h: float) -> list[int]:
        """Remove unmatched candidates and tracks lost too long or predicted wholly outside the image; their ids."""
        window = self.config.lost_buffer_s + TIME_EPS
        ended: list[int] = []
        keep: list[Row] = []
        for r in self.rows:
            if r.tracked:
                keep.append(r)
                continue
            x0, y0, x2, y2 = r.unclipped
            confirmed = r.id != UNCONFIRMED
            if not confirmed or (ts - r.last_seen) > window or x2 <= 0 or y2 <= 0 or x0 >= w or y0 >= h:
                if confirmed:
                    ended.append(r.id)
            else:
                keep.append(r)
        if len(keep) != len(self.rows):
            self.rows = keep
        return ended

    def _birth_and_confirm(self, dets: _Dets, births: list[int], ts: float, w: float, h: float) -> None:
        """Start candidates from the births, then give an id to every candidate with ``confirm_hits`` hits."""
        noise = self.noise
        pos, init_v, size_v = 2.0 * noise.std_position, noise.std_init_velocity, 10.0 * noise.std_velocity
        wx, hy = w - BORDER_PX, h - BORDER_PX
        rows = self.rows
        for j in births:
            box = dets.boxes[j]
            x0, y0, x2, y2 = box
            zw, zh = x2 - x0, y2 - y0
            sw, sh = (zw if zw > 1.0 else 1.0), (zh if zh > 1.0 else 1.0)
            a, b, c, d = pos * sw, pos * sh, init_v * sw, init_v * sh
            e, g = size_v * sw, size_v * sh
            pa, pb = a * a, b * b
            full_w = (0.0 if 0.0 > zw else zw) if (x0 <= BORDER_PX or x2 >= wx) else zw  # max(0, size)
            full_h = (0.0 if 0.0 > zh else zh) if (y0 <= BORDER_PX or y2 >= hy) else zh
            r = Row(UNCONFIRMED, [x0 + zw / 2, y0 + zh / 2, zw, zh, 0.0, 0.0, 0.0, 0.0],
                    [pa, pb, pa, pb, 0.0, 0.0, 0.0, 0.0, c * c, d * d, e * e, g * g],
                    [x0, y0, x2, y2, dets.scores[j], dets.angles[j], dets.cls[j], full_w, full_h, ts, 1], True)
            rows.append(r)
        confirm = self.config.confirm_hits
        for r in rows:
            if r.id == UNCONFIRMED and r.hits >= confirm:
                r.id = self.ids.next_id()

    def _report(self, ts: float) -> tuple[list[int], list[int], list[Box], list[float], list[float], list[bool]]:
        """Confirmed tracks matched in this frame, and lost ones for a short while (boxes clipped, mostly inside)."""
        window = self.config.predicted_output_s + TIME_EPS
        ids: list[int] = []
        cls: list[int] = []
        boxes: list[Box] = []
        scores: list[float] = []
        angles: list[float] = []
        detected: list[bool] = []
        for r in self.rows:
            if r.id == UNCONFIRMED:
                continue
            if r.tracked:
                boxes.append(r.box)
            else:
                if not (ts - r.last_seen) <= window:
                    continue
                u, p = r.unclipped, r.pred
                full_area = (u[2] - u[0]) * (u[3] - u[1])
                full_area = full_area if full_area > 1e-9 else 1e-9
                if not (p[2] - p[0]) * (p[3] - p[1]) / full_area >= MIN_INSIDE:
                    continue
                boxes.append(p)
            ids.append(r.id)
            cls.append(r.cls)
            scores.append(r.score)
            angles.append(r.angle)
            detected.append(r.tracked)
        return ids, cls, boxes, scores, angles, detected


def finite(boxes: list[list[float]], scores: list[float]) -> bool:
    """Are all boxes and scores finite (the float64 sum of float32 values is finite exactly when they all are)."""
    return math.isfinite(sum(scores) + sum(sum(b) for b in boxes))
