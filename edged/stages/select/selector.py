"""Best-image selection per frame: which image becomes a track's best and is uploaded.

For the current image and each track of a selection class detected in it:

1. :func:`~edged.stages.select.rules.qualifies`: its "last observation belongs to this image" is the row's
   image id against the frame's. :class:`~edged.stages.track.observations.TrackHistory` only hands in rows
   made from this image, but a caller that carries a track's older row into the frame (a track not
   re-detected here) gets it skipped: it is neither better nor a trigger, nor in the package;
2. better than the track's previous best (:func:`~edged.stages.select.rules.is_better`); a track with no
   previous best takes its first qualifying image;
3. if better and the image is not yet marked uploaded, the image becomes the track's best, is marked
   uploaded and is packaged: immediate or cached by :func:`~edged.stages.select.rules.sends_immediately`
   applied to that track's box.

Several tracks may find the same image better. The first of them by ascending track id takes it:
its box decides immediate or cached, and the image is marked uploaded. The others find the image
already marked: no second package is made, but each of them also takes the image as its best, since
the package already carries their observation in it. So a track is never starved by
another that keeps improving, and every track gets a best image at its first observation.
Auto-exposure images are never better (better needs the locked exposure), though one can be a track's
first best.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from edged.config import SelectConfig
from edged.core.classes import class_id
from edged.core.types import ExposureMode
from edged.stages.select.package import UploadPackage
from edged.stages.select.rules import (
    area_ratio,
    box_area,
    box_size,
    is_better,
    min_edge_distance,
    qualifies,
    sends_immediately,
)
from edged.stages.track.observations import FrameObservations

MARK_MEMORY = 4096
"""Image ids remembered as uploaded: a frame handed to the selector twice is not uploaded twice."""


@dataclass(frozen=True, slots=True)
class BestImage:
    """A track's current best image and the measures the next comparison needs."""

    image_id: str
    timestamp: float
    edge: float
    score: float
    area: float
    manual: bool
    box: tuple[float, float, float, float]


@dataclass(slots=True)
class SelectCounters:
    frames: int = 0
    qualified: int = 0
    better: int = 0
    already_marked: int = 0
    """Track found the image better after another track had taken it (it shares that package)."""
    immediate: int = 0
    cached: int = 0


@dataclass(slots=True)
class Selection:
    """The selector's result for one frame."""

    package: UploadPackage | None
    better_track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Tracks that found this image better, ascending; the first triggered the package and all of
    them now have it as their best."""


class BestImageSelector:
    """Keeps each track's best image; ``select(frame_observations)`` once per frame, in time order."""

    def __init__(self, config: SelectConfig) -> None:
        self.config = config
        self.class_ids = np.array(sorted(class_id(c) for c in config.classes), dtype=np.int16)
        self.best: dict[int, BestImage] = {}
        self._marked: OrderedDict[str, None] = OrderedDict()
        self.counters = SelectCounters()

    def is_marked(self, image_id: str) -> bool:
        return image_id in self._marked

    def _mark(self, image_id: str) -> None:
        self._marked[image_id] = None
        while len(self._marked) > MARK_MEMORY:
            self._marked.popitem(last=False)

    def forget(self, track_ids: np.ndarray | list[int]) -> None:
        """Drop the state of ended tracks."""
        for tid in np.asarray(track_ids, dtype=np.int64).tolist():
            self.best.pop(tid, None)

    def select(self, frame: FrameObservations) -> Selection:
        """Apply S4 to one frame's observations (one row per track: its latest observation)."""
        cfg, meta = self.config, frame.meta
        self.counters.frames += 1
        obs = frame.select(np.isin(frame.class_ids, self.class_ids))
        if len(obs) == 0:
            return Selection(None)
        rows = obs.rows
        boxes = rows["box"]
        width, height = box_size(boxes)
        edge = min_edge_distance(boxes, meta.width, meta.height, rows["angle"])
        area = box_area(boxes)
        score = rows["score"]  # float32: thresholds compare in float32 (NEP 50), so == boundaries hold
        manual = meta.exposure.mode == ExposureMode.MANUAL
        latest = rows["image_id"] == meta.image_id  # qualifying needs the track's last observation in this image
        ok = qualifies(latest, obs.counts, width, height, score, cfg)
        self.counters.qualified += int(ok.sum())

        tids = obs.track_ids.tolist()
        prev = [self.best.get(t) for t in tids]
        has_prev = np.array([p is not None for p in prev])
        edge_then = np.array([p.edge if p else 0.0 for p in prev])
        score_then = np.array([p.score if p else 0.0 for p in prev])
        area_then = np.array([p.area if p else 0.0 for p in prev])
        improves = is_better(edge, score, manual, area, edge_then, score_then, area_then, cfg)
        better = ok & np.where(has_prev, improves, True)
        candidates = np.flatnonzero(better)
        self.counters.better += candidates.size
        if candidates.size == 0:
            return Selection(None)
        order = candidates[np.argsort(obs.track_ids[candidates], kind="stable")]
        better_ids = obs.track_ids[order].astype(np.int64)
        if self.is_marked(meta.image_id):  # the same image handed in twice: never a second package
            self.counters.already_marked += order.size
            return Selection(None, better_ids)
        for j in order.tolist():
            b = boxes[j]
            self.best[tids[j]] = BestImage(meta.image_id, meta.timestamp, float(edge[j]), float(score[j]),
                                           float(area[j]), manual, (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        self._mark(meta.image_id)
        self.counters.already_marked += order.size - 1
        i = int(order[0])
        ratio = area_ratio(boxes[i : i + 1], meta.width, meta.height)[0]
        immediate = bool(sends_immediately(ratio, score[i], edge[i], cfg))
        if immediate:
            self.counters.immediate += 1
        else:
            self.counters.cached += 1
        here = obs.select(latest)  # the package: every track with an observation in this image
        package = UploadPackage(
            meta, immediate, tids[i], here.track_ids.copy(), here.class_ids.copy(), here.rows.copy()
        )
        return Selection(package, better_ids)
