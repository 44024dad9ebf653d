"""Tracking accuracy on a scene with known ground truth: MOTA, IDF1, ID switches, HOTA.

Ground-truth boxes become detections with added box noise, misses (random and under occlusion),
low scores and false positives; the edged tracker (and optionally trackers' ``ByteTrackTracker``)
runs on them and Roboflow ``trackers.eval`` scores the result (class-aware: a track only matches
ground truth of its own class).

Sources: ``synthetic`` (scripted box trajectories: cars, trucks, buses in four lanes with
perspective, people on the pavement and crossing) or ``fake`` (``edged_sim.camera.FakeCamera``'s ground
truth, when that backend exists).

    python -m tools.eval.tracking --seconds 120 --seed 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from edged.config import Config, SelectConfig, TrackConfig
from edged.core.classes import CLASS_NAMES, SENSITIVE_IDS, class_id
from edged.core.geometry import iou_matrix
from edged.core.types import Detections, Exposure, ExposureMode, FrameMeta, Position
from edged.stages.track.ids import MemoryIds
from edged.stages.track.tracker import Tracker
from edged_sim.evaluate import tracking_scores
from edged_sim.ground_truth import GroundTruth

WIDTH, HEIGHT, FPS = 1280, 720, 10.0


# ------------------------------------------------------------------------------------------- scene
@dataclass(slots=True)
class _Mover:
    oid: int
    cls: int
    start: int
    x: float
    y: float
    w: float
    h: float
    vx: float
    vy: float
    growth: float  # relative size change per frame (perspective)


def scripted_scene(
    seed: int, seconds: float, fps: float = FPS, width: int = WIDTH, height: int = HEIGHT,
    vehicles_per_minute: float = 40.0, people_per_minute: float = 20.0,
) -> list[GroundTruth]:
    """Per-frame ground truth of a road scene: boxes clipped to the image, ``visible`` >= 0.25."""
    rng = np.random.default_rng(seed)
    n_frames = int(round(seconds * fps))
    movers: list[_Mover] = []
    oid = 1
    # Lanes: (centre y of box bottom, scale, direction); far lanes are higher and smaller.
    lanes = [(0.52, 0.55, 1), (0.62, 0.7, -1), (0.76, 0.85, 1), (0.92, 1.0, -1)]
    for frame in range(n_frames):
        for _ in range(rng.poisson(vehicles_per_minute / 60.0 / fps)):
            ly, scale, direction = lanes[rng.integers(len(lanes))]
            kind = rng.choice(["car", "car", "car", "truck", "bus"])
            base_w, base_h = {"car": (230, 110), "truck": (330, 170), "bus": (380, 180)}[kind]
            w, h = base_w * scale * rng.uniform(0.85, 1.15), base_h * scale * rng.uniform(0.85, 1.15)
            speed = rng.uniform(25, 65) * scale * (0.7 if kind != "car" else 1.0)
            x = -w / 2 - 5 if direction > 0 else width + w / 2 + 5
            y = ly * height - h / 2
            movers.append(_Mover(oid, class_id(kind), frame, x, y, w, h, direction * speed,
                                 rng.normal(0, 0.3), 0.0))
            oid += 1
        for _ in range(rng.poisson(people_per_minute / 60.0 / fps)):
            h = rng.uniform(70, 130)
            w = h * rng.uniform(0.35, 0.45)
            if rng.random() < 0.7:  # along the pavement
                direction = rng.choice([-1, 1])
                x = -w / 2 - 2 if direction > 0 else width + w / 2 + 2
                movers.append(_Mover(oid, class_id("person"), frame, x, 0.42 * height - h / 2, w, h,
                                     direction * rng.uniform(2.0, 6.0), rng.normal(0, 0.2), 0.0))
            else:  # crossing the road towards the camera, growing
                x = rng.uniform(0.15, 0.85) * width
                movers.append(_Mover(oid, class_id("person"), frame, x, 0.40 * height - h / 2, w * 0.7,
                                     h * 0.7, rng.normal(0, 0.5), rng.uniform(3.0, 5.0), 0.004))
            oid += 1

    frames: list[list[tuple[int, int, np.ndarray, float]]] = [[] for _ in range(n_frames)]
    for m in movers:
        x, y, w, h = m.x, m.y, m.w, m.h
        for frame in range(m.start, n_frames):
            full = np.array([x - w / 2, y - h / 2, x + w / 2, y + h / 2])
            clipped = np.clip(full, [0, 0, 0, 0], [width, height, width, height])
            area = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
            vis = max(area, 0.0) / (w * h)
            if frame > m.start + 5 and (full[2] < 0 or full[0] > width or full[3] < 0 or full[1] > height):
                break
            if vis >= 0.25:
                frames[frame].append((m.oid, m.cls, clipped, vis))
            x, y = x + m.vx, y + m.vy
            w, h = w * (1 + m.growth), h * (1 + m.growth)
    out = []
    for rows in frames:
        out.append(GroundTruth(
            object_ids=np.array([r[0] for r in rows], dtype=np.int64),
            class_ids=np.array([r[1] for r in rows], dtype=np.int16),
            boxes=np.array([r[2] for r in rows], dtype=np.float32).reshape(-1, 4),
            parent_ids=np.full(len(rows), -1, dtype=np.int64),
            visible=np.array([r[3] for r in rows], dtype=np.float32),
            texts=tuple("" for _ in rows),
        ))
    return out


def fake_camera_scene(seed: int, seconds: float, fps: float = FPS, width: int = WIDTH,
                      height: int = HEIGHT, events: bool = False) -> tuple[list[GroundTruth], list[FrameMeta]]:
    """Ground truth and frame metadata from ``edged_sim.camera.FakeCamera`` (it renders every frame).

    Exposure follows the meter-and-lock rule in its simplest form: auto for the first second, then
    manual at 2 ms with the gain that keeps shutter x gain (so the selector sees manual frames).
    ``events`` adds the scene's camera faults (light change, 2 s freeze, 2 s cover): a freeze or cover
    hides 2 s of motion, after which every track is matched afresh (id switches that are not the
    tracker's doing), so they are off by default.
    """
    from edged_sim.camera import FakeCamera  # imported only when asked for: rendering needs its assets

    cam = FakeCamera(width=width, height=height, fps=fps, seed=seed, t0=1.7e9, events=events)
    cam.start()
    gts, metas = [], []
    try:
        for i in range(int(round(seconds * fps))):
            if i == int(fps):
                e = cam.read_exposure()
                lo, hi = cam.gain_range
                cam.set_manual_exposure(2000.0, float(np.clip(e.shutter_us * e.gain / 2000.0, lo, hi)))
            cap = cam.capture()
            if cap.ground_truth is None:
                raise RuntimeError("edged_sim.camera.FakeCamera returned no ground truth")
            gts.append(cap.ground_truth)
            metas.append(FrameMeta(f"img-{i:08d}", i, "video-0", cap.timestamp, cap.exposure, Position(), width, height))
        return gts, metas
    finally:
        cam.stop()


# ------------------------------------------------------------------------------------ detections
@dataclass(frozen=True, slots=True)
class Noise:
    """How ground truth is spoiled into detections."""

    box_sigma: float = 0.04
    """Box edge noise, fraction of box size (1 sigma)."""
    miss_rate: float = 0.08
    """Chance a visible object is not detected in a frame."""
    occluded_miss: float | None = 0.6
    """An object whose box is covered more than this by a nearer object's is missed (``None``: off,
    for sources whose ground truth already removes hidden parts)."""
    low_score_rate: float = 0.15
    """Chance a detection's score falls below ``high_score`` (partly occluded, blurred)."""
    fp_per_frame: float = 0.15
    """Mean false positives per frame (random boxes, mixed scores)."""


def spoil(gts: list[GroundTruth], noise: Noise, seed: int, classes: Iterable[str] | None = None,
          width: int = WIDTH, height: int = HEIGHT) -> list[Detections]:
    """Detections of ``classes`` (default: all) made from ground truth with box noise, misses, low
    scores and false positives."""
    rng = np.random.default_rng(seed + 1_000_003)
    keep_classes = np.array([class_id(c) for c in (classes or CLASS_NAMES)])
    out = []
    for gt in gts:
        sel = np.isin(gt.class_ids, keep_classes)
        boxes = gt.boxes[sel].astype(np.float64)
        cls = gt.class_ids[sel]
        n = boxes.shape[0]
        keep = rng.random(n) >= noise.miss_rate
        if n > 1 and noise.occluded_miss is not None:  # occlusion: a nearer (lower bottom edge) box covers this one
            iou_inter = _coverage(boxes)
            nearer = boxes[:, 3][None, :] > boxes[:, 3][:, None]
            covered = (iou_inter * nearer).max(axis=1)
            keep &= covered <= noise.occluded_miss
        wh = np.column_stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
        jitter = rng.normal(0, noise.box_sigma, (n, 4)) * np.tile(wh, 2)
        boxes = boxes + jitter
        scores = np.where(rng.random(n) < noise.low_score_rate, rng.uniform(0.2, 0.5, n), rng.uniform(0.55, 0.98, n))
        n_fp = rng.poisson(noise.fp_per_frame)
        fp_wh = rng.uniform(30, 200, (n_fp, 2))
        fp_xy = rng.uniform(0, 1, (n_fp, 2)) * (np.array([width, height]) - fp_wh)
        fp_boxes = np.column_stack([fp_xy, fp_xy + fp_wh])
        all_boxes = np.concatenate([boxes[keep], fp_boxes])
        all_boxes = np.clip(all_boxes, 0, [width, height, width, height])
        out.append(Detections(
            boxes=all_boxes.astype(np.float32).reshape(-1, 4),
            scores=np.concatenate([scores[keep], rng.uniform(0.15, 0.75, n_fp)]).astype(np.float32),
            class_ids=np.concatenate([cls[keep], rng.choice(keep_classes, n_fp)]).astype(np.int16),
            angles=np.zeros(int(keep.sum()) + n_fp, dtype=np.float32),
        ))
    return out


def _coverage(boxes: np.ndarray) -> np.ndarray:
    """``cov[i, j]`` = fraction of box ``i`` covered by box ``j`` (0 on the diagonal)."""
    ix = np.clip(np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1]), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cov = ix * iy / np.maximum(area[:, None], 1e-9)
    np.fill_diagonal(cov, 0.0)
    return cov


def frame_metas(n: int, fps: float = FPS, width: int = WIDTH, height: int = HEIGHT, t0: float = 1.7e9,
                auto_every_s: float = 60.0, auto_for_s: float = 1.0) -> list[FrameMeta]:
    """Metadata of ``n`` frames; the first ``auto_for_s`` of every ``auto_every_s`` are auto exposure."""
    metas = []
    for i in range(n):
        t = i / fps
        auto = (t % auto_every_s) < auto_for_s
        exposure = Exposure(ExposureMode.AUTO if auto else ExposureMode.MANUAL, 2000.0, 2.0)
        metas.append(FrameMeta(f"img-{i:08d}", i, "video-0", t0 + t, exposure, Position(), width, height))
    return metas


# -------------------------------------------------------------------------------------- trackers
@dataclass(slots=True)
class TrackOutput:
    """One frame of tracker output for scoring."""

    track_ids: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray


def run_edged(metas: list[FrameMeta], dets: list[Detections], config: TrackConfig | None = None,
              fps: float = FPS, include_predicted: bool = False) -> list[TrackOutput]:
    tracker = Tracker(config or TrackConfig(), MemoryIds(), fps)
    out = []
    for meta, d in zip(metas, dets, strict=True):
        obj = tracker.update(meta, d).objects
        if not include_predicted:
            obj = obj.select(obj.detected)
        out.append(TrackOutput(obj.track_ids, obj.class_ids, obj.boxes))
    return out


def reference_factory(config: TrackConfig | None = None, fps: float = FPS) -> Callable[..., object]:
    """trackers' ``ByteTrackTracker`` with the settings that match ``config``; ``make(sensitive=True)``
    takes the face and plate scores (``sensitive_birth_score``, ``sensitive_high_score``)."""
    from trackers import ByteTrackTracker

    cfg = config or TrackConfig()

    def make(sensitive: bool = False) -> object:
        return ByteTrackTracker(
            lost_track_buffer=int(round(cfg.lost_buffer_s * 30)),  # counted in 30 fps frames
            frame_rate=fps,
            track_activation_threshold=cfg.sensitive_birth_score if sensitive else cfg.birth_score,
            minimum_consecutive_frames=cfg.confirm_hits,
            minimum_iou_threshold=cfg.min_iou_first,
            high_conf_det_threshold=cfg.sensitive_high_score if sensitive else cfg.high_score,
        )
    return make


def run_reference(metas: list[FrameMeta], dets: list[Detections], config: TrackConfig | None = None,
                  fps: float = FPS) -> list[TrackOutput]:
    """trackers' ByteTrackTracker, one instance per class (it is class-agnostic; faces and plates with
    their own scores, as edged's tracker), ids made unique."""
    import supervision as sv

    make = reference_factory(config, fps)
    cfg = config or TrackConfig()
    per_class: dict[int, object] = {}
    out = []
    for d in dets:
        ids, cls, boxes = [], [], []
        present = set(np.unique(d.class_ids).tolist()) | set(per_class)
        for c in sorted(present):
            if c not in per_class:
                per_class[c] = make(c in SENSITIVE_IDS)
            tracker = per_class[c]
            m = (d.class_ids == c) & (d.scores >= cfg.low_score)
            res = tracker.update(sv.Detections(xyxy=d.boxes[m].astype(np.float32), confidence=d.scores[m],
                                               class_id=np.full(int(m.sum()), c)))
            ok = res.tracker_id >= 0
            ids.append(res.tracker_id[ok].astype(np.int64) * len(CLASS_NAMES) + c)
            cls.append(np.full(int(ok.sum()), c, dtype=np.int16))
            boxes.append(res.xyxy[ok])
        out.append(TrackOutput(
            np.concatenate(ids) if ids else np.zeros(0, np.int64),
            np.concatenate(cls) if cls else np.zeros(0, np.int16),
            np.concatenate(boxes).reshape(-1, 4) if boxes else np.zeros((0, 4), np.float32),
        ))
    return out


# ---------------------------------------------------------------------------------------- scoring
def score(gts: list[GroundTruth], outputs: list[TrackOutput], classes: Iterable[str] | None = None,
          threshold: float = 0.5, hota: bool = True) -> dict[str, float]:
    """CLEAR (MOTA, IDSW...), identity (IDF1) and HOTA (NaN when ``hota`` is False, it is the slow
    one) from ``trackers.eval`` (:func:`edged_sim.evaluate.tracking_scores`), with class-aware IoU."""
    keep_classes = np.array([class_id(c) for c in (classes or SelectConfig().classes)])
    gt_frames, out_frames = [], []
    for gt, out in zip(gts, outputs, strict=True):
        g = np.isin(gt.class_ids, keep_classes)
        t = np.isin(out.class_ids, keep_classes)
        gt_frames.append((gt.object_ids[g], gt.class_ids[g], gt.boxes[g]))
        out_frames.append((out.track_ids[t], out.class_ids[t], out.boxes[t]))
    return tracking_scores(gt_frames, out_frames, threshold, hota)


@dataclass(slots=True)
class Scene:
    """Frames of one evaluation run: metadata, scored ground truth, ignored ground truth, detections."""

    metas: list[FrameMeta]
    gts: list[GroundTruth]
    ignored: list[GroundTruth]
    """Ground truth too hidden to score (``visible`` < ``min_visible``): outputs on it are neither
    true nor false positives (as MOT benchmarks treat distractors)."""
    dets: list[Detections]
    source: str = "synthetic"


def split_visible(gt: GroundTruth, min_visible: float) -> tuple[GroundTruth, GroundTruth]:
    keep = gt.visible >= min_visible

    def part(mask: np.ndarray) -> GroundTruth:
        return GroundTruth(gt.object_ids[mask], gt.class_ids[mask], gt.boxes[mask], gt.parent_ids[mask],
                           gt.visible[mask], tuple(x for x, k in zip(gt.texts, mask, strict=True) if k), gt.events)
    return part(keep), part(~keep)


def make_scene(source: str, seed: int, seconds: float, noise: Noise | None = None, fps: float = FPS,
               min_visible: float = 0.25, classes: Iterable[str] | None = None, events: bool = False) -> Scene:
    """A scene with detections spoiled from its ground truth (``classes``: the detected classes)."""
    if source == "synthetic":
        raw = scripted_scene(seed, seconds, fps)
        metas = frame_metas(len(raw), fps)
        noise = noise or Noise()
    elif source == "fake":
        raw, metas = fake_camera_scene(seed, seconds, fps, events=events)
        noise = noise or Noise(occluded_miss=None)
    else:
        raise ValueError(f"unknown source {source!r}; use 'synthetic' or 'fake'")
    pairs = [split_visible(g, min_visible) for g in raw]
    gts, ignored = [p[0] for p in pairs], [p[1] for p in pairs]
    return Scene(metas, gts, ignored, spoil(gts, noise, seed, classes), source)


def drop_ignored(outputs: list[TrackOutput], ignored: list[GroundTruth], threshold: float = 0.5) -> list[TrackOutput]:
    """Remove output boxes that cover ignored (mostly hidden) ground truth of their class."""
    out = []
    for o, ig in zip(outputs, ignored, strict=True):
        if len(ig) == 0 or len(o.track_ids) == 0:
            out.append(o)
            continue
        sim = iou_matrix(o.boxes, ig.boxes) * (o.class_ids[:, None] == ig.class_ids[None, :])
        keep = sim.max(axis=1) < threshold
        out.append(TrackOutput(o.track_ids[keep], o.class_ids[keep], o.boxes[keep]))
    return out


SENSITIVE = ("face", "plate")


def evaluate(scene: Scene, outputs: list[TrackOutput], classes: Iterable[str] | None = None,
             hota: bool = True) -> dict[str, float]:
    """Scores of ``outputs`` on ``scene`` for ``classes`` (default: the selection classes)."""
    return score(scene.gts, drop_ignored(outputs, scene.ignored), classes, hota=hota)


@dataclass(slots=True)
class SelectionRun:
    packages: list  # edged.stages.select.package.UploadPackage
    observed: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    """Per frame: (track ids, class ids, boxes) of every observation."""
    best_takers: list[np.ndarray]
    """Per frame: ids of the tracks that took this frame's image as their best."""
    counters: object


def run_selection(scene: Scene, config: Config | None = None) -> SelectionRun:
    """The tracking and selection stages over a scene (ids in memory)."""
    from edged.stages.select.selector import BestImageSelector
    from edged.stages.track.stage import Tracking

    cfg = config or Config()
    tracking = Tracking.from_config(cfg, MemoryIds())
    selector = BestImageSelector(cfg.select)
    packages, observed, takers = [], [], []
    for meta, d in zip(scene.metas, scene.dets, strict=True):
        step, obs, _ = tracking.step(meta, d)
        sel = selector.select(obs)
        selector.forget(step.ended_ids)
        if sel.package is not None:
            packages.append(sel.package)
        observed.append((obs.track_ids, obs.class_ids, obs.rows["box"]))
        takers.append(sel.better_track_ids if sel.package is not None else np.zeros(0, np.int64))
    return SelectionRun(packages, observed, takers, selector.counters)


def best_image_coverage(scene: Scene, run: SelectionRun, min_seconds: float = 1.0,
                        classes: Iterable[str] | None = None, fps: float = FPS) -> tuple[int, int, list[int]]:
    """``(objects in view >= min_seconds, of which with a best image, ids without one)``.

    Each track stands for the ground-truth object it overlapped (IoU >= 0.5, same class) in most
    frames; an object has a best image when a track that stands for it took one.
    """
    keep = np.array([class_id(c) for c in (classes or SelectConfig().classes)])
    frames_seen: dict[int, int] = {}
    pair_counts: dict[tuple[int, int], int] = {}
    for gt, (tids, cls, boxes) in zip(scene.gts, run.observed, strict=True):
        sel = np.isin(gt.class_ids, keep)
        oids = gt.object_ids[sel]
        for oid in oids.tolist():
            frames_seen[oid] = frames_seen.get(oid, 0) + 1
        if len(boxes) and len(oids):
            sim = iou_matrix(gt.boxes[sel], boxes) * (gt.class_ids[sel][:, None] == cls[None, :])
            for g, k in zip(*np.nonzero(sim >= 0.5), strict=True):
                key = (int(tids[k]), int(oids[g]))
                pair_counts[key] = pair_counts.get(key, 0) + 1
    stands_for: dict[int, tuple[int, int]] = {}
    for (tid, oid), n in pair_counts.items():
        if n > stands_for.get(tid, (-1, 0))[1]:
            stands_for[tid] = (oid, n)
    took = {int(t) for ids in run.best_takers for t in ids.tolist()}
    covered = {stands_for[t][0] for t in took if t in stands_for}
    long = [oid for oid, n in frames_seen.items() if n >= min_seconds * fps]
    missing = [oid for oid in long if oid not in covered]
    return len(long), len(long) - len(missing), missing


def _line(name: str, m: dict[str, float]) -> str:
    return (f"{name:26s} MOTA {m['MOTA']:.3f}  IDF1 {m['IDF1']:.3f}  HOTA {m['HOTA']:.3f}  IDSW {m['IDSW']:3d}  "
            f"FP {m['FP']:5d}  FN {m['FN']:5d}  tracks {m['tracks']} / objects {m['gt_objects']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["synthetic", "fake"], default="synthetic")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--events", action="store_true", help="fake scene: include freeze/cover/light events")
    parser.add_argument("--miss-rate", type=float, default=None, help="chance a visible object is not detected")
    parser.add_argument("--box-sigma", type=float, default=None, help="box edge noise, fraction of size")
    parser.add_argument("--fp-per-frame", type=float, default=None, help="mean false positives per frame")
    parser.add_argument("--reference", action="store_true", help="also score trackers' ByteTrackTracker")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    base = Noise() if args.source == "synthetic" else Noise(occluded_miss=None)
    noise = Noise(
        box_sigma=base.box_sigma if args.box_sigma is None else args.box_sigma,
        miss_rate=base.miss_rate if args.miss_rate is None else args.miss_rate,
        occluded_miss=base.occluded_miss, low_score_rate=base.low_score_rate,
        fp_per_frame=base.fp_per_frame if args.fp_per_frame is None else args.fp_per_frame,
    )
    scene = make_scene(args.source, args.seed, args.seconds, noise=noise, events=args.events)
    n_gt = sum(len(g) for g in scene.gts)
    events = " with camera events" if args.events and args.source == "fake" else ""
    print(f"{args.source} scene{events}: {len(scene.metas)} frames at {FPS:g} fps, {n_gt} scored ground-truth boxes, "
          f"seed {args.seed} ({time.perf_counter() - t0:.1f} s to make)")
    print(f"noise: {noise}")
    groups = {"selection classes": None, "face+plate": SENSITIVE}
    full = run_edged(scene.metas, scene.dets, include_predicted=True)
    detected_only = [TrackOutput(o.track_ids, o.class_ids, o.boxes) for o in run_edged(scene.metas, scene.dets)]
    ref = run_reference(scene.metas, scene.dets) if args.reference else None
    for group, classes in groups.items():
        wanted = np.array([class_id(c) for c in (classes or SelectConfig().classes)])
        if not any(np.isin(g.class_ids, wanted).any() for g in scene.gts):
            continue  # e.g. the synthetic scene has no faces or plates
        print(f"-- {group}")
        print(_line("edged (all reported)", evaluate(scene, full, classes)))
        print(_line("edged (detected only)", evaluate(scene, detected_only, classes)))
        if ref is not None:
            print(_line("trackers ByteTrackTracker", evaluate(scene, ref, classes)))
    run = run_selection(scene)
    n_long, n_cov, missing = best_image_coverage(scene, run)
    minutes = len(scene.metas) / FPS / 60
    imm = sum(p.immediate for p in run.packages)
    print(f"-- selection: {len(run.packages)} packages ({len(run.packages) / minutes:.1f}/min, {imm} immediate, "
          f"{len(run.packages) - imm} cached); objects in view >= 1 s with a best image: {n_cov}/{n_long}"
          + (f" (missing ids {missing[:10]})" if missing else ""))
    print(f"   counters: {run.counters}")
    print(f"({time.perf_counter() - t0:.1f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
