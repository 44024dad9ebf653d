"""Track-stable de-identification: temporal stability, so de-identified video compresses well (no learned model).

Hiding each frame on its own makes a de-identified region flicker: its box jitters with the
detector and its blurred content follows every change of the pixels below, so inter-frame video
coding spends bits on it. Here each track keeps

- a **box on a grid** (``grid_px``, one H.264 macroblock by default) with hysteresis: it is a grid
  step larger than the object's grown box, stays where it is while the object stays inside it,
  moves by whole grid steps when the object would leave it, grows at once and shrinks slowly
  (``shrink_per_frame``). The box always contains the object's grown box: stability never uncovers
  a pixel.
- a **fitted rectangle** inside that box for a region detected in this frame whose grown box is at
  least ``fit_from_px`` wide: only the grown box, pushed out to the grid, is hidden, and each side
  stays put until the object crosses it or leaves more than a grid step between them. A large face
  found in this frame sits where its box says, so the box's slack would only hide scenery; a small
  or predicted one may lag its box, and keeps the whole box.
- a **low-resolution field** (the region's cells, as in :func:`edged.stages.privacy.deid.sample_field`)
  updated by an exponential average (``fill_update``) of what the region shows now, and redrawn
  only when that average has moved ``redraw_levels`` grey levels from what is shown. The rendered
  content stays pixel-identical between redraws and moves with the box in whole grid steps, which
  motion compensation codes almost for free.

With ``shape = "ellipse"`` the pixels hidden are the ellipse inscribed in the object's grown box of
this frame, drawn from the box's stable field: the mask fits the object wherever the hysteresis
holds the box, and the content under it still stays put.

State is keyed by (class, track id). A detection the tracker has not confirmed (or a track with a
new id) takes over the free state of its class whose box holds most of it, so objects the tracker
loses or confirms late stay stable too; a state not drawn for a few frames is forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edged.stages.privacy.deid import (
    UNTRACKED,
    DeidResult,
    Method,
    SensitiveRegions,
    Shape,
    cell_size,
    check_image,
    check_style,
    edge_field,
    field_shape,
    grow_boxes,
    paint_order,
    paste,
    render_field,
    sample_field,
    shape_mask,
)

ADOPT_INSIDE = 0.5
"""A region without a known state takes over a free state of its class whose box holds at least
this share of the region's grown box (same object, new or no track id)."""
KEEP_IDLE_FRAMES = 3
"""A state not drawn for this many frames is forgotten (bridges short detector misses of objects
the tracker has not confirmed)."""


@dataclass(slots=True)
class _TrackRegion:
    """What one track's region remembers between frames."""

    x1: int
    y1: int
    w: int
    h: int
    hold_w: float
    hold_h: float
    field: np.ndarray
    """``(rows, cols, C)`` float32 exponential average of the region's cells."""
    shown: np.ndarray | None = None
    """The field as last drawn; redrawn only when ``field`` moved away from it (``redraw_levels``)."""
    idle: int = 0
    """Frames since the region was last drawn."""
    fitted: tuple[int, int, int, int] | None = None
    """The grid rectangle hidden inside the box (``x1, y1, x2, y2``) when the region is fitted, else ``None``."""


def _fit_side(prev: int | None, edge: float, grid: int, low: bool) -> int:
    """Grid line for one side of a fitted rectangle: outside the grown box's ``edge``, the previous one
    while it leaves at most one grid step more than needed, else the nearest one outside."""
    need = math.floor(edge / grid) * grid if low else math.ceil(edge / grid) * grid
    if prev is not None and (need - grid <= prev <= edge if low else edge <= prev <= need + grid):
        return prev
    return need


def _place(lo: float, hi: float, prev: int | None, centre: float, size: int, grid: int) -> int:
    """Grid-aligned start ``s`` with ``lo <= s <= hi``: the previous one if still valid, else the
    valid one nearest to it (or, for a new track, nearest to centring the object)."""
    first, last = math.ceil(lo / grid) * grid, math.floor(hi / grid) * grid
    if first > last:  # cannot happen while size >= object + grid; keep the object covered anyway
        return math.floor(lo)
    if prev is not None and first <= prev <= last:
        return prev
    target = prev if prev is not None else centre - size / 2
    return int(min(max(round(target / grid) * grid, first), last))


class StableDeidentifier:
    """De-identifier with per-track state; call once per frame, frames in order."""

    def __init__(
        self,
        method: Method = "blur",
        margin: float = 0.4,
        cells: int = 2,
        min_cell_px: int = 4,
        grid_px: int = 8,
        shrink_per_frame: float = 0.005,
        fill_update: float = 0.05,
        redraw_levels: float = 4.0,
        shape: Shape = "box",
        fit_from_px: int = 96,
        edge_fill: tuple[int, ...] = (),
    ) -> None:
        check_style(method, shape)
        self.method: Method = method
        self.shape: Shape = shape
        self.margin = margin
        self.cells = cells
        self.min_cell_px = min_cell_px
        self.grid = grid_px
        self.shrink = shrink_per_frame
        self.alpha = fill_update
        self.redraw = redraw_levels
        self.fit_from_px = fit_from_px
        self.edge_fill = frozenset(edge_fill)
        """Class ids whose regions are painted from their edge (:func:`edged.stages.privacy.deid.edge_field`)."""
        self._tracks: dict[tuple[int, int], _TrackRegion] = {}
        self._private = UNTRACKED - 1
        """Next key for a region without a track id (negative, never a tracker id)."""

    @property
    def live_tracks(self) -> int:
        """Regions drawn in the last frame (remembered idle ones not counted)."""
        return sum(1 for st in self._tracks.values() if st.idle == 0)

    def reset(self) -> None:
        self._tracks.clear()

    def __call__(self, pixels: np.ndarray, regions: SensitiveRegions) -> DeidResult:
        check_image(pixels)
        grown = grow_boxes(regions.boxes, regions.angles, self.margin)
        out = pixels.copy()
        rects = np.zeros((len(regions), 4), dtype=np.int32)
        keys = self._associate(regions, grown)
        states: list[tuple[_TrackRegion, bool]] = []
        for i, key in enumerate(keys):
            prev = self._tracks.get(key)
            state = self._update_box(prev, grown[i])
            fit = bool(regions.detected[i]) and grown[i][2] - grown[i][0] >= self.fit_from_px
            state.fitted = self._fit(prev.fitted if prev is not None else None, grown[i]) if fit else None
            states.append((state, prev is None))
            self._tracks[key] = state
        edge = np.array([k[0] in self.edge_fill for k in keys], bool)
        boxes = np.array([[s.x1, s.y1, s.x1 + s.w, s.y1 + s.h] for s, _ in states], np.int64).reshape(-1, 4)
        for i in paint_order(boxes, edge):
            state, new = states[i]
            rects[i] = self._paint(out if edge[i] else pixels, out, state, new, grown[i], bool(edge[i]))
        drawn = set(keys)
        for key in list(self._tracks):
            if key not in drawn:
                self._tracks[key].idle += 1
                if self._tracks[key].idle > KEEP_IDLE_FRAMES:
                    del self._tracks[key]
        return DeidResult(out, rects)

    def _associate(self, regions: SensitiveRegions, grown: np.ndarray) -> list[tuple[int, int]]:
        """State key of each region: its track's, else (a detection not in a track, or a new track
        id) the free state of the same class whose box holds most of the region, else a new one."""
        n = len(regions)
        keys: list[tuple[int, int] | None] = [None] * n
        used: set[tuple[int, int]] = set()
        for i in range(n):
            key = (int(regions.class_ids[i]), int(regions.track_ids[i]))
            if key[1] != UNTRACKED and key in self._tracks and key not in used:
                keys[i] = key
                used.add(key)
        pairs = self._inside_pairs(regions, grown, [i for i in range(n) if keys[i] is None], used)
        for _, i, key in sorted(pairs, key=lambda p: -p[0]):
            if keys[i] is not None or key in used:
                continue
            used.add(key)
            tid = int(regions.track_ids[i])
            if tid != UNTRACKED:  # a track confirmed (or re-born) where a region was: it inherits it
                new_key = (key[0], tid)
                self._tracks[new_key] = self._tracks.pop(key)
                key = new_key
            keys[i] = key
        for i in range(n):
            if keys[i] is None:
                tid = int(regions.track_ids[i])
                if tid == UNTRACKED:
                    tid, self._private = self._private, self._private - 1
                keys[i] = (int(regions.class_ids[i]), tid)
        return keys  # type: ignore[return-value]

    def _inside_pairs(
        self, regions: SensitiveRegions, grown: np.ndarray, free: list[int], used: set[tuple[int, int]]
    ) -> list[tuple[float, int, tuple[int, int]]]:
        """(share of the region inside the state's box, region, state key) for each free region and each unused
        state of its class whose box holds at least ``ADOPT_INSIDE`` of it."""
        pairs = []
        for i in free:
            gx1, gy1, gx2, gy2 = grown[i]
            area = max((gx2 - gx1) * (gy2 - gy1), 1e-9)
            for key, st in self._tracks.items():
                if key in used or key[0] != int(regions.class_ids[i]):
                    continue
                ix = max(0.0, min(gx2, st.x1 + st.w) - max(gx1, st.x1))
                iy = max(0.0, min(gy2, st.y1 + st.h) - max(gy1, st.y1))
                inside = ix * iy / area
                if inside >= ADOPT_INSIDE:
                    pairs.append((inside, i, key))
        return pairs

    # ------------------------------------------------------------------ internals
    def _update_box(self, prev: _TrackRegion | None, grown: np.ndarray) -> _TrackRegion:
        g = self.grid
        rx1, ry1, rx2, ry2 = (float(v) for v in grown)
        need_w = math.ceil((rx2 - rx1 + g) / g) * g
        need_h = math.ceil((ry2 - ry1 + g) / g) * g
        if prev is None:
            hold_w, hold_h = float(need_w), float(need_h)
        else:
            hold_w = max(float(need_w), prev.hold_w * (1.0 - self.shrink))
            hold_h = max(float(need_h), prev.hold_h * (1.0 - self.shrink))
        w = math.ceil(hold_w / g - 1e-9) * g
        h = math.ceil(hold_h / g - 1e-9) * g
        x1 = _place(rx2 - w, rx1, prev.x1 if prev else None, (rx1 + rx2) / 2, w, g)
        y1 = _place(ry2 - h, ry1, prev.y1 if prev else None, (ry1 + ry2) / 2, h, g)
        fld = prev.field if prev is not None else np.zeros((0, 0, 0), dtype=np.float32)
        shown = prev.shown if prev is not None and (prev.w, prev.h) == (w, h) else None
        return _TrackRegion(x1, y1, w, h, hold_w, hold_h, fld, shown, 0)

    def _fit(self, prev: tuple[int, int, int, int] | None, grown: np.ndarray) -> tuple[int, int, int, int]:
        """The fitted rectangle around the grown box, each side kept while it stays within a grid step."""
        g = self.grid
        p = prev if prev is not None else (None, None, None, None)
        return (
            _fit_side(p[0], float(grown[0]), g, True), _fit_side(p[1], float(grown[1]), g, True),
            _fit_side(p[2], float(grown[2]), g, False), _fit_side(p[3], float(grown[3]), g, False),
        )

    def _paint(
        self, pixels: np.ndarray, out: np.ndarray, st: _TrackRegion, new: bool, grown: np.ndarray, edge: bool
    ) -> tuple[int, int, int, int]:
        img_h, img_w = pixels.shape[:2]
        vx1, vy1 = max(st.x1, 0), max(st.y1, 0)
        vx2, vy2 = min(st.x1 + st.w, img_w), min(st.y1 + st.h, img_h)
        if st.fitted is not None:  # only the fitted rectangle of the box is hidden
            fx1, fy1, fx2, fy2 = st.fitted
            vx1, vy1, vx2, vy2 = max(vx1, fx1), max(vy1, fy1), min(vx2, fx2), min(vy2, fy2)
        if vx2 <= vx1 or vy2 <= vy1:
            return (0, 0, 0, 0)
        patch = pixels[vy1:vy2, vx1:vx2]
        # the whole box from the hidden pixels alone, edges replicated beyond them, so cells keep their place
        full = cv2.copyMakeBorder(
            patch, vy1 - st.y1, st.y1 + st.h - vy2, vx1 - st.x1, st.x1 + st.w - vx2, cv2.BORDER_REPLICATE
        ).reshape(st.h, st.w, -1)
        cell = cell_size(st.w, st.h, self.cells, self.min_cell_px)
        shape = field_shape(st.w, st.h, cell)
        obs = edge_field(full, shape) if edge else sample_field(full, shape)
        if new or st.field.shape[:2] != shape or st.field.shape[2] != obs.shape[2]:
            if new or st.field.size == 0 or st.field.shape[2] != obs.shape[2]:
                st.field = obs
            else:  # the box was resized: carry the average over to the new cells
                old = cv2.resize(st.field, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
                st.field = old.reshape(obs.shape) * (1.0 - self.alpha) + obs * self.alpha
        else:
            st.field = st.field * (1.0 - self.alpha) + obs * self.alpha
        if st.shown is None or st.shown.shape != st.field.shape or (
            float(np.abs(st.field - st.shown).mean()) > self.redraw
        ):
            st.shown = st.field.copy()
        drawn = render_field(st.shown, st.w, st.h, self.method)
        visible = drawn[vy1 - st.y1 : vy2 - st.y1, vx1 - st.x1 : vx2 - st.x1].reshape(patch.shape)
        rect = (vx1, vy1, vx2, vy2)
        paste(out, rect, visible, shape_mask(rect, grown, self.shape))
        return rect
