"""Where a scanning model looks at high resolution this frame, and what it keeps from earlier frames.

The frame is reduced to a grey image of 8 x 8 pixel cells. Windows of a fixed grid overlap, and each
cell belongs to the window whose centre is nearest (its *core*), so an object up to ``overlap`` x
the window side lies wholly inside the window whose core holds its centre. A stream's first frame
is scanned whole. After it, each frame scans:

1. the windows where cells changed by more than ``motion_levels`` since the last frame, outside the
   boxes earlier models explain and the held boxes: for each connected changed area the window
   holding its centre, the most strongly changed area first, so a newcomer is searched on the frame
   it appears; changed windows the budget left out wait, and come right after the next frames'
   changes until they are scanned (a newcomer that stops changing is still searched);
2. the windows of held boxes, longest unchecked first; those about to expire come before the
   changes (up to half the budget), so what was found is checked again rather than dropped; with
   ``zoom_follow`` small held boxes are checked in a closer window centred on them instead, outside
   the budget;
3. a rotating sweep.

A box found in a window is held, and reported as it was, until a scanned window holds it again or
``hold_frames`` pass. A window box just below the model's threshold may get a second look: one window
enlarged ``zoom_scale`` times, centred on it (:func:`zoom_windows`, :func:`zoomed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edged.config import ScanConfig
from edged.config.detect import tile_starts
from edged.core.geometry import expand, iou_matrix
from edged.core.types import Detections

CELL_PX = 8
"""Side of one motion cell in frame pixels."""
EXPLAINED_GROWTH = 0.25
"""Explaining and held boxes are grown by this fraction of their size on every side: a walking
person's legs, shadow and box jitter change cells just outside the box."""
Window = tuple[int, int, int, int]
"""``x, y, w, h`` in frame pixels."""
ZOOM_FIT = 0.5
"""A weak box gets a second look only if it is at most this share of the closer window's height, so
the face lies well inside that window (the scan is for small faces)."""
ZOOM_IOU = 0.3
"""A second look's box is the weak box it looked at when they overlap this much; a weak box this
close to a box the windows found at the threshold is that object, and gets no second look."""


@dataclass(frozen=True, slots=True)
class WindowGrid:
    """The scan windows of one frame size: left/top edges and the window each cell row/column falls to."""

    xs: np.ndarray
    ys: np.ndarray
    side_w: int
    side_h: int
    col_window: np.ndarray
    """Per cell column, the index into ``xs`` of the window whose centre is nearest."""
    row_window: np.ndarray

    @classmethod
    def build(cls, width: int, height: int, window: tuple[int, int], overlap: float) -> WindowGrid:
        sw, sh = min(window[0], width), min(window[1], height)
        xs = np.asarray(tile_starts(width, sw, overlap), np.int32)
        ys = np.asarray(tile_starts(height, sh, overlap), np.int32)
        cells_x = (np.arange(-(-width // CELL_PX)) + 0.5) * CELL_PX
        cells_y = (np.arange(-(-height // CELL_PX)) + 0.5) * CELL_PX
        col = np.abs(cells_x[:, None] - (xs[None, :] + sw / 2)).argmin(axis=1)
        row = np.abs(cells_y[:, None] - (ys[None, :] + sh / 2)).argmin(axis=1)
        return cls(xs, ys, sw, sh, col.astype(np.int32), row.astype(np.int32))

    @property
    def count(self) -> int:
        return int(self.xs.size * self.ys.size)

    def rect(self, index: int) -> Window:
        """``(x, y, w, h)`` of window ``index`` (row-major)."""
        r, c = divmod(index, self.xs.size)
        return int(self.xs[c]), int(self.ys[r]), self.side_w, self.side_h

    def windows_of_cells(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows whose core holds the given cells, and how many cells each holds, most first."""
        if not rows.size:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ids = self.row_window[rows].astype(np.int64) * self.xs.size + self.col_window[cols]
        windows, counts = np.unique(ids, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return windows[order], counts[order]


def cell_image(bgr: np.ndarray) -> np.ndarray:
    """Mean grey level of each 8 x 8 cell of a BGR frame, float32."""
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (-(-w // CELL_PX), -(-h // CELL_PX)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)


@dataclass(slots=True)
class FrameChange:
    """How much each 8 x 8 cell's mean grey level moved since the last frame (``None`` on a stream's first)."""

    previous: np.ndarray | None = None
    change: np.ndarray | None = None

    def reset(self) -> None:
        self.previous = self.change = None

    def update(self, bgr: np.ndarray) -> None:
        """Take the next frame."""
        cells = cell_image(bgr)
        same = self.previous is not None and self.previous.shape == cells.shape
        self.change = np.abs(cells - self.previous) if same else None
        self.previous = cells

    def still(self, x: int, y: int, w: int, h: int, levels: float) -> bool:
        """True when no cell of the rectangle moved by more than ``levels`` since the last frame."""
        if self.change is None:
            return False
        patch = self.change[y // CELL_PX:-(-(y + h) // CELL_PX), x // CELL_PX:-(-(x + w) // CELL_PX)]
        return bool(patch.size) and float(patch.max()) <= levels


def inside_any(boxes: np.ndarray, windows: list[Window]) -> np.ndarray:
    """Per box: does some window hold it wholly."""
    if not len(boxes) or not windows:
        return np.zeros(len(boxes), bool)
    w = np.asarray(windows, np.float32)
    x1, y1, x2, y2 = w[:, 0], w[:, 1], w[:, 0] + w[:, 2], w[:, 1] + w[:, 3]
    b = boxes[:, None, :]
    return np.asarray(((b[..., 0] >= x1) & (b[..., 1] >= y1) & (b[..., 2] <= x2) & (b[..., 3] <= y2)).any(axis=1))


@dataclass(slots=True)
class ScanPlanner:
    """One model's scan: chooses each frame's windows and holds what earlier windows found."""

    config: ScanConfig
    window: tuple[int, int]
    """Window size in frame pixels (model input / scale)."""
    grid: WindowGrid | None = None
    cursor: int = 0
    held: Detections = field(default_factory=Detections)
    ages: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    """Frames since each held box was found."""
    waiting: dict[int, None] = field(default_factory=dict)
    """Changed windows not scanned yet, oldest first (an ordered set)."""
    last_counts: dict[str, int] = field(default_factory=dict)
    """Windows chosen on the last frame by reason (``first``, ``motion``, ``follow``, ``close``, ``sweep``)."""
    zoom_window: tuple[int, int] | None = None
    """The closer window of second looks (frame pixels); with ``zoom_follow``, small held boxes are
    checked again in one centred on them."""

    def reset(self) -> None:
        """Forget what earlier frames found."""
        self.cursor = 0
        self.waiting = {}
        self.held = Detections()
        self.ages = np.zeros(0, np.int32)

    def plan(self, width: int, height: int, change: np.ndarray | None,
             explained: np.ndarray | None = None) -> list[Window]:
        """The windows to scan on a ``width`` x ``height`` frame given its :class:`FrameChange`
        ``change`` (``None``: a stream's first frame, scanned whole); changes inside the
        ``explained`` boxes (``(N, 4)``, frame pixels) call for none."""
        if change is None or self.grid is None or (self.grid.col_window.size, self.grid.row_window.size) != (
                change.shape[1], change.shape[0]):
            self.reset()
            self.grid = WindowGrid.build(width, height, self.window, self.config.overlap)
            self.last_counts = {"first": self.grid.count}
            return [self.grid.rect(i) for i in range(self.grid.count)]
        grid, budget = self.grid, self.config.max_windows
        changed = self.unexplained(change, explained)
        close, closer = self.close_follows(width, height)
        held_windows = self.held_windows(change.shape, ~close)
        due = [win for win, age in held_windows if age >= self.config.hold_frames - 1][:max(1, budget // 2)]
        chosen: dict[int, str] = dict.fromkeys(due, "follow")
        for win in [*self.changed_windows(changed, change), *self.waiting]:
            if len(chosen) < budget:
                chosen.setdefault(win, "motion")
            elif win not in chosen:
                self.waiting.setdefault(win)
        for win, _ in held_windows:
            if len(chosen) >= budget:
                break
            chosen.setdefault(win, "follow")
        self.sweep(chosen)
        for win in chosen:
            self.waiting.pop(win, None)
        self.last_counts = {r: sum(1 for v in chosen.values() if v == r) for r in ("motion", "follow", "sweep")}
        self.last_counts["close"] = len(closer)
        return [grid.rect(i) for i in sorted(chosen)] + closer

    def close_follows(self, width: int, height: int) -> tuple[np.ndarray, list[Window]]:
        """Which held boxes are checked again in a closer window centred on them (``zoom_follow``: the
        small ones, longest unchecked first, at most ``zoom_windows``), and those windows."""
        close = np.zeros(len(self.held), bool)
        if not self.config.zoom_follow or self.zoom_window is None or not len(self.held):
            return close, []
        zw, zh = self.zoom_window
        fits = self.held.boxes[:, 3] - self.held.boxes[:, 1] <= ZOOM_FIT * zh
        order = [i for i in np.argsort(-self.ages, kind="stable") if fits[i]][:self.config.zoom_windows]
        close[order] = True
        return close, [centred(self.held.boxes[i], (zw, zh), width, height) for i in order]

    def unexplained(self, change: np.ndarray, explained: np.ndarray | None) -> np.ndarray:
        """Cells changed by more than ``motion_levels`` outside the held and the ``explained`` boxes."""
        changed = change > self.config.motion_levels
        known = [self.held.boxes] + ([explained] if explained is not None else [])
        grown = expand(np.concatenate(known), EXPLAINED_GROWTH)
        if len(grown):
            rows, cols = changed.shape
            cover = np.clip(np.floor(grown / CELL_PX).astype(np.int64), 0, [cols, rows, cols, rows])
            for x1, y1, x2, y2 in cover:
                changed[y1:y2 + 1, x1:x2 + 1] = False
        return changed

    def sweep(self, chosen: dict[int, str]) -> None:
        """Add the next ``sweep_windows`` windows of the rotating sweep not chosen already."""
        grid = self.grid
        assert grid is not None
        swept = 0
        for _ in range(grid.count):
            if swept >= self.config.sweep_windows:
                break
            win, self.cursor = self.cursor, (self.cursor + 1) % grid.count
            if win not in chosen:
                chosen[win] = "sweep"
                swept += 1

    def held_windows(self, cells_shape: tuple[int, ...], among: np.ndarray | None = None) -> list[tuple[int, int]]:
        """The window whose core holds each held box's centre (``among`` them), with the box's age, oldest first."""
        grid = self.grid
        if grid is None or not len(self.held):
            return []
        order = np.argsort(-self.ages, kind="stable")
        if among is not None:
            order = order[among[order]]
        boxes = self.held.boxes[order]
        cx = np.clip(((boxes[:, 0] + boxes[:, 2]) / 2 // CELL_PX).astype(np.int64), 0, cells_shape[1] - 1)
        cy = np.clip(((boxes[:, 1] + boxes[:, 3]) / 2 // CELL_PX).astype(np.int64), 0, cells_shape[0] - 1)
        windows = grid.row_window[cy].astype(np.int64) * grid.xs.size + grid.col_window[cx]
        return [(int(w), int(a)) for w, a in zip(windows, self.ages[order], strict=True)]

    def changed_windows(self, changed: np.ndarray, change: np.ndarray) -> list[int]:
        """Windows to scan for the changed cells, the most strongly changed area first (something
        appearing changes its cells more than something drifting): the window whose core holds the
        centre of each connected area, then, for an area too large for one window, the windows of
        all its cells."""
        grid = self.grid
        assert grid is not None
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(changed.astype(np.uint8), connectivity=8)
        if count <= 1:
            return []
        summed = np.bincount(labels.ravel(), weights=change.ravel(), minlength=count)[1:]
        strength = summed / stats[1:, cv2.CC_STAT_AREA]
        order = 1 + np.argsort(-strength, kind="stable")
        fits_w = self.config.overlap * grid.side_w / CELL_PX
        fits_h = self.config.overlap * grid.side_h / CELL_PX
        out: list[int] = []
        for k in order:
            cx, cy = centroids[k]
            out.append(int(grid.row_window[int(cy)]) * grid.xs.size + int(grid.col_window[int(cx)]))
            if stats[k, cv2.CC_STAT_WIDTH] > fits_w or stats[k, cv2.CC_STAT_HEIGHT] > fits_h:
                rows, cols = np.nonzero(labels == k)
                out.extend(int(w) for w in grid.windows_of_cells(rows, cols)[0])
        return out

    def hold(self, found: Detections, windows: list[Window]) -> Detections:
        """This frame's window detections plus the held ones no scanned window holds; the result is held."""
        keep = ~inside_any(self.held.boxes, windows) & (self.ages < self.config.hold_frames)
        carried = self.held.select(keep)
        self.held = Detections.concat([found, carried])
        self.ages = np.concatenate([np.zeros(len(found), np.int32), self.ages[keep] + 1])
        return self.held


def zoom_windows(weak: Detections, strong: Detections, window: tuple[int, int], width: int, height: int,
                 limit: int | None) -> tuple[Detections, list[Window]]:
    """The weak boxes to look at again (at most half the window's height, none overlapping a strong
    one, best first, at most ``limit``) and, for each, a ``window``-sized window centred on it inside
    the frame."""
    weak = weak.select(np.asarray(weak.boxes[:, 3] - weak.boxes[:, 1] <= ZOOM_FIT * window[1]))
    if not len(weak):
        return weak, []
    if len(strong):
        weak = weak.select(np.asarray(~(iou_matrix(weak.boxes, strong.boxes) >= ZOOM_IOU).any(axis=1)))
    weak = weak.select(np.argsort(-weak.scores, kind="stable")[:limit])
    return weak, [centred(box, window, width, height) for box in weak.boxes]


def centred(box: np.ndarray, window: tuple[int, int], width: int, height: int) -> Window:
    """A ``window``-sized window centred on ``box`` (x1, y1, x2, y2), inside the frame."""
    ww, wh = min(window[0], width), min(window[1], height)
    x = int(np.clip(round((box[0] + box[2]) / 2 - ww / 2), 0, width - ww))
    y = int(np.clip(round((box[1] + box[3]) / 2 - wh / 2), 0, height - wh))
    return x, y, ww, wh


def zoomed(weak: Detections, looks: list[Detections]) -> Detections:
    """Per weak box, the best box its second look found over it (``ZOOM_IOU``), if any."""
    kept = []
    for i, found in enumerate(looks):
        if len(found):
            over = iou_matrix(weak.boxes[i:i + 1], found.boxes)[0] >= ZOOM_IOU
            if over.any():
                best = int(np.flatnonzero(over)[np.argmax(found.scores[over])])
                kept.append(found.select(np.array([best])))
    return Detections.concat(kept)
