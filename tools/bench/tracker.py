"""Tracker speed and accuracy, side by side on the same detections: edged vs trackers' ByteTrackTracker.

Both trackers get the same detections (ground truth spoiled by ``tools.eval.tracking``: box noise,
misses, low scores, false positives) with matching settings (thresholds, 2-frame confirmation, lost
buffer). Two scenes: ``fake`` (``edged_sim.camera.FakeCamera``, sparse and real-style, a few objects a frame)
and ``synthetic`` (scripted road traffic, busier). trackers' ByteTrack is class-agnostic, so it is run
two ways: one class-agnostic instance on every detection (the speed yardstick: the fewest calls it can
make, though it may pair a detection with a track of another class) and one instance per class (the
same task as edged's per-class track sets). Only ``update`` calls are timed (inputs are built
beforehand); passes are interleaved and each timing is the best of ``--repeat`` passes.
Accuracy: ``trackers.eval`` MOTA / IDF1 / HOTA, class-aware, on the selection classes; edged is
scored on its detected boxes (as the reference reports only detected boxes) and on everything it
reports (predicted boxes of recently lost tracks included).

    nice -n 10 python -m tools.bench.tracker            # writes the "tracking" section of docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from edged.config import TrackConfig
from edged.core.classes import SENSITIVE_IDS
from edged.stages.track.ids import MemoryIds
from edged.stages.track.tracker import Tracker
from tools.bench.doc import git_revision, machine_line, write_section
from tools.eval.tracking import (
    FPS,
    Noise,
    Scene,
    TrackOutput,
    evaluate,
    make_scene,
    reference_factory,
)


def time_edged(scene: Scene) -> tuple[float, list[TrackOutput], list[TrackOutput]]:
    """One timed pass of the edged tracker: (seconds, all reported boxes, detected boxes)."""
    tracker = Tracker(TrackConfig(), MemoryIds(), FPS)
    steps = []
    t0 = time.perf_counter()
    for meta, d in zip(scene.metas, scene.dets, strict=True):
        steps.append(tracker.update(meta, d))
    elapsed = time.perf_counter() - t0
    full = [TrackOutput(s.objects.track_ids, s.objects.class_ids, s.objects.boxes) for s in steps]
    det = [TrackOutput(s.objects.track_ids[s.objects.detected], s.objects.class_ids[s.objects.detected],
                       s.objects.boxes[s.objects.detected]) for s in steps]
    return elapsed, full, det


def reference_inputs(scene: Scene, per_class: bool) -> list[dict]:
    """sv.Detections per frame (keyed by class, or -1 for class-agnostic), built before timing."""
    import supervision as sv

    cfg = TrackConfig()
    inputs = []
    for d in scene.dets:
        m = d.scores >= cfg.low_score
        if per_class:
            inputs.append({int(c): sv.Detections(xyxy=d.boxes[m & (d.class_ids == c)].astype(np.float32),
                                                 confidence=d.scores[m & (d.class_ids == c)],
                                                 class_id=d.class_ids[m & (d.class_ids == c)].astype(int))
                           for c in np.unique(d.class_ids[m]).tolist()})
        else:
            inputs.append({-1: sv.Detections(xyxy=d.boxes[m].astype(np.float32), confidence=d.scores[m],
                                             class_id=d.class_ids[m].astype(int))})
    return inputs


def time_reference(inputs: list[dict]) -> tuple[float, list[TrackOutput]]:
    """One timed pass of trackers' ByteTrackTracker (one instance per key of the inputs)."""
    import supervision as sv

    make = reference_factory(TrackConfig(), FPS)
    empty = sv.Detections.empty()
    trackers: dict[int, object] = {}
    results = []
    t0 = time.perf_counter()
    for frame in inputs:
        out = {}
        for c in set(frame) | set(trackers):
            if c not in trackers:
                trackers[c] = make(c in SENSITIVE_IDS)  # -1: the class-agnostic instance
            tracker = trackers[c]
            out[c] = tracker.update(frame.get(c, empty))
        results.append(out)
    elapsed = time.perf_counter() - t0
    outputs = []
    for out in results:
        ids, cls, boxes = [], [], []
        for c, res in out.items():
            if len(res) == 0:
                continue
            ok = res.tracker_id >= 0
            ids.append(res.tracker_id[ok].astype(np.int64) * 16 + (c + 1))
            cls.append(res.class_id[ok].astype(np.int16))
            boxes.append(res.xyxy[ok])
        outputs.append(TrackOutput(
            np.concatenate(ids) if ids else np.zeros(0, np.int64),
            np.concatenate(cls) if cls else np.zeros(0, np.int16),
            np.concatenate(boxes).reshape(-1, 4) if boxes else np.zeros((0, 4), np.float32),
        ))
    return elapsed, outputs


def bench(scene: Scene, repeat: int) -> list[tuple[str, float, dict]]:
    """Passes interleaved (edged, reference per class, reference agnostic) ``repeat`` times; best of each."""
    n = len(scene.metas)
    per_class, agnostic = reference_inputs(scene, True), reference_inputs(scene, False)
    t_edged = t_ref = t_agn = float("inf")
    for _ in range(repeat):
        t, full, det = time_edged(scene)
        t_edged = min(t_edged, t)
        t, ref = time_reference(per_class)
        t_ref = min(t_ref, t)
        t, agn = time_reference(agnostic)
        t_agn = min(t_agn, t)
    return [
        ("edged Tracker (detected boxes)", n / t_edged, evaluate(scene, det)),
        ("edged Tracker (all reported boxes)", n / t_edged, evaluate(scene, full)),
        ("trackers ByteTrackTracker, one instance per class", n / t_ref, evaluate(scene, ref)),
        ("trackers ByteTrackTracker, one class-agnostic instance", n / t_agn, evaluate(scene, agn)),
    ]


def table(rows: list[tuple[str, float, dict]]) -> str:
    lines = ["| tracker | frames/s | MOTA | IDF1 | HOTA | IDSW | FP | FN |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, fps, m in rows:
        lines.append(f"| {name} | {fps:,.0f} | {m['MOTA']:.3f} | {m['IDF1']:.3f} | {m['HOTA']:.3f} | {m['IDSW']} | "
                     f"{m['FP']} | {m['FN']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-fake", action="store_true", help="skip the fake-camera scene")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    parser.add_argument("--note", default="", help="extra text for the section (e.g. where it ran)")
    parser.add_argument("--rev", default=None, help="git revision to name (default: this checkout's)")
    args = parser.parse_args(argv)

    scenes = [("synthetic", make_scene("synthetic", args.seed, args.seconds, noise=Noise()))]
    if not args.no_fake:
        fake_noise = Noise(box_sigma=0.03, miss_rate=0.05, occluded_miss=None, low_score_rate=0.15, fp_per_frame=0.2)
        scenes.append(("fake", make_scene("fake", args.seed, args.seconds, noise=fake_noise)))
    load = os.getloadavg()[0]
    parts = []
    for name, scene in scenes:
        n_gt = sum(len(g) for g in scene.gts)
        n_det = sum(len(d) for d in scene.dets)
        per_frame = np.array([len(g) for g in scene.gts])
        rows = bench(scene, args.repeat)
        head = (f"### {name} scene: {len(scene.metas)} frames ({args.seconds:g} s at {FPS:g} fps), seed {args.seed}, "
                f"{n_gt} ground-truth boxes ({per_frame.mean():.1f} a frame, 10-90 % of frames "
                f"{np.percentile(per_frame, 10):.0f}-{np.percentile(per_frame, 90):.0f}), {n_det} detections\n\n"
                f"Detections: {scene_noise(name)}\n\n{table(rows)}\n\n"
                f"edged runs at {rows[0][1] / rows[3][1]:.2f}x the frame rate of one class-agnostic ByteTrackTracker "
                f"and {rows[0][1] / rows[2][1]:.2f}x that of one instance per class, in the same run.")
        print(head + "\n")
        parts.append(head)
    cmd = "nice -n 10 python -m tools.bench.tracker" + (f" --seconds {args.seconds:g}" if args.seconds != 120 else "")
    cmd += f" --repeat {args.repeat}" if args.repeat != 3 else ""
    body = (
        "## Tracking: edged tracker vs trackers' ByteTrackTracker (same detections)\n\n"
        f"Command: `{cmd}` (rev {args.rev or git_revision()}){' ' + args.note if args.note else ''}  \n"
        f"Machine: {machine_line()}; load average {load:.1f} when started  \n"
        "Frames/s: tracker `update` calls only (inputs built beforehand), best of "
        f"{args.repeat} passes. Accuracy: `trackers.eval` (CLEAR, identity, HOTA; IoU 0.5), class-aware, "
        "selection classes; ground truth under 25 % visible is ignored (outputs on it count neither way). "
        "Two yardsticks: one class-agnostic ByteTrackTracker on all detections (fewest calls; it may mix "
        "classes) and one ByteTrackTracker per class (the task edged does: a detection only ever matches a "
        "track of its class).\n\n"
        + "\n\n".join(parts)
    )
    if not args.no_write:
        write_section("tracking", body)
    return 0


def scene_noise(name: str) -> str:
    if name == "synthetic":
        return ("busier: scripted trajectories (cars, trucks, buses in 4 lanes with perspective, people), ground truth "
                "with 4 % box noise, 8 % random misses, misses under > 60 % occlusion, 15 % low scores (0.2-0.5), "
                "0.15 false positives/frame")
    return ("sparse, real-style: `edged_sim.camera.FakeCamera` ground truth (events off), 3 % box noise, 5 % misses, "
            "15 % low scores, 0.2 false positives/frame")


if __name__ == "__main__":
    raise SystemExit(main())
