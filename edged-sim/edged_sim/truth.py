"""What the simulated run knows on the device side: ground truth, raw-crop digests, what was sent.

:class:`TruthSink` is a daemon sink. For every finished frame it keeps, **in memory only**:

* the frame's metadata and the fake camera's ground truth (small arrays);
* a SHA-256 digest of the raw pixels of every de-identified rectangle (the exact rectangles whose
  original crops the sealed records carry), so a restored crop can be compared with the raw frame
  without a raw pixel ever being kept or written;
* for frames that were packaged for ops: the face boxes the detector finds on the raw frame (the
  de-identification check compares what it finds before and after): the pipeline's own detections,
  or, when ``raw_face_detect`` is given (oracle runs), that detector's;
* every outgoing envelope's id, destination, kind and priority (the zero-loss check's reference);
* the per-stage timings of the frame.

:class:`TruthDetectStage` is an *oracle* detector for the simulation only (``--detector truth``):
ground-truth boxes with jitter, misses and scores, so the chain after detection can be judged
before (or independently of) the real models. The daemon itself never uses it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edged.core.classes import CLASS_NAMES
from edged.core.types import Detections
from edged.stages.pipeline import FrameWork
from edged_sim.ground_truth import GroundTruth, truth_of

FACE = CLASS_NAMES.index("face")


def crop_digest(pixels: np.ndarray) -> bytes:
    """SHA-256 of a crop's pixels with its shape (what a restored crop must reproduce)."""
    a = np.ascontiguousarray(pixels)
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.digest()


@dataclass(slots=True)
class FrameTruth:
    """One processed frame as the simulation remembers it."""

    image_id: str
    frame_index: int
    timestamp: float
    manual: bool
    sunk_wall: float
    """``time.time()`` when the sink saw the frame (its messages were stored then)."""
    gt: GroundTruth
    raw_faces: np.ndarray | None = None
    """Face boxes the detector found on the raw frame (kept only for packaged frames)."""
    raw_face_scores: np.ndarray | None = None
    """Their scores."""


@dataclass(slots=True)
class Sent:
    """One outgoing envelope as stored in the outbox."""

    id: str
    dest: str
    kind: str
    prio: str
    image_id: str | None
    created: float


@dataclass
class TruthSink:
    """Daemon sink keeping the run's ground truth and references (see the module doc)."""

    frames: list[FrameTruth] = field(default_factory=list)
    by_image: dict[str, int] = field(default_factory=dict)
    """Image id -> index into :attr:`frames`."""
    crops: dict[tuple[str, int, int, int, int], bytes] = field(default_factory=dict)
    """(image id, x, y, w, h) -> :func:`crop_digest` of the raw pixels of that rectangle."""
    sent: list[Sent] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=dict)
    """Stage name -> milliseconds, one entry per frame that ran the stage."""
    regions: int = 0
    t0: float | None = None
    """Timestamp of the first frame (scene time 0)."""
    last_scene_s: float = 0.0
    raw_face_detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    """Face detector for the raw frames (oracle runs): image -> (boxes, scores)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def consume(self, work: FrameWork) -> None:
        frame, meta = work.frame, work.frame.meta
        attached = truth_of(frame.ground_truth)
        gt = attached if attached is not None else GroundTruth()
        if self.t0 is None:
            self.t0 = meta.timestamp
        raw_faces = raw_scores = None
        if work.upload is not None:
            if self.raw_face_detect is not None:
                raw_faces, raw_scores = self.raw_face_detect(frame.pixels)
            elif work.detections is not None:
                d = work.detections
                raw_faces, raw_scores = d.boxes[d.class_ids == FACE].copy(), d.scores[d.class_ids == FACE].copy()
        truth = FrameTruth(
            meta.image_id, meta.frame_index, meta.timestamp, str(meta.exposure.mode) == "manual",
            time.time(), gt, raw_faces, raw_scores,
        )
        rects = work.sensitive_rects
        digests = {}
        if rects is not None:
            for x1, y1, x2, y2 in np.asarray(rects, dtype=np.int64).tolist():
                if x2 > x1 and y2 > y1:
                    digests[(meta.image_id, x1, y1, x2 - x1, y2 - y1)] = crop_digest(frame.pixels[y1:y2, x1:x2])
        sent = [Sent(e.id, e.dest, e.kind, e.prio, e.image_id, e.created) for e in work.outgoing]
        with self._lock:
            self.by_image[meta.image_id] = len(self.frames)
            self.frames.append(truth)
            self.crops.update(digests)
            self.regions += len(digests)
            self.sent.extend(sent)
            for name, ms in work.timings_ms.items():
                self.timings.setdefault(name, []).append(ms)
            self.last_scene_s = meta.timestamp - self.t0

    def close(self) -> dict[str, Any]:
        return {"truth": {"frames": len(self.frames), "sensitive_rects": self.regions, "sent": len(self.sent)}}

    def frame(self, image_id: str) -> FrameTruth | None:
        i = self.by_image.get(image_id)
        return None if i is None else self.frames[i]

    def scene_s(self, timestamp: float) -> float:
        return timestamp - (self.t0 if self.t0 is not None else timestamp)


@dataclass(frozen=True)
class OracleSettings:
    """How :class:`TruthDetectStage` spoils ground truth into detections."""

    jitter: float = 0.03
    """Each box edge moves by up to this fraction of the box size (uniform): a good detector's
    localisation error at IoU ~0.9."""
    miss_rate: float = 0.05
    """Fraction of visible objects not reported in a frame (the tracker's lost buffer bridges it)."""
    min_visible: float = 0.3
    """Objects less visible than this are not reported (a detector rarely finds a sliver)."""
    min_size_px: float = 6.0
    """Nor objects whose shorter side is smaller than this."""
    score_range: tuple[float, float] = (0.6, 0.95)
    """Scores are drawn uniformly from this range: above the tracker's birth score and select's
    ``score1``, around its ``score2``, so both immediate and cached uploads happen."""


class TruthDetectStage:
    """Oracle ``detect`` stage for the simulation: ground truth spoiled by :class:`OracleSettings`."""

    name = "detect"

    def __init__(self, settings: OracleSettings | None = None, seed: int = 0) -> None:
        self.settings = settings or OracleSettings()
        self.rng = np.random.default_rng(seed)

    def __call__(self, work: FrameWork) -> None:
        gt, s = truth_of(work.frame.ground_truth), self.settings
        if gt is None or len(gt) == 0:
            work.detections = Detections()
            return
        boxes = gt.boxes.astype(np.float32)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = (gt.visible >= s.min_visible) & (np.minimum(w, h) >= s.min_size_px)
        keep &= self.rng.random(len(gt)) >= s.miss_rate
        n = int(keep.sum())
        size = np.stack([w, h, w, h], axis=1)[keep]
        noisy = boxes[keep] + self.rng.uniform(-s.jitter, s.jitter, (n, 4)).astype(np.float32) * size
        height, width = work.frame.pixels.shape[:2]
        noisy[:, [0, 2]] = noisy[:, [0, 2]].clip(0, width)
        noisy[:, [1, 3]] = noisy[:, [1, 3]].clip(0, height)
        scores = self.rng.uniform(*s.score_range, n).astype(np.float32)
        work.detections = Detections(noisy, scores, gt.class_ids[keep].astype(np.int16), np.zeros(n, np.float32))
