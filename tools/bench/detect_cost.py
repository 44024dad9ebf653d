"""Where the detect stage's time goes: CPU time of each default model a frame, on a real clip.

    python -m tools.bench.detect_cost [--input VIDEO] [--frames 150] [--size 1280x720] [--threads 1]

Runs :class:`edged.stages.detect.detector.Detector` with the default models on the clip's frames
(resized with :func:`tools.bench.vs_deface.resize` when ``--size`` is given) and prints, per model, the
CPU milliseconds a frame (its regions' thread CPU time, on whichever worker ran them: what the model
costs the machine) and its invokes a frame, then the CPU time of the whole process (``cpu``) and the
wall time (``wall``) of detection a frame. A stream's first frame (the scans' whole-frame pass) is
reported apart. OpenCV runs on the calling thread, as in the daemon.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from edged.config import DetectConfig
from edged.core.types import Detections
from edged.stages.detect import detector as detector_module
from edged.stages.detect.detector import Detector, LoadedModel, Region
from tools.bench.vs_deface import parse_size, resize
from tools.eval.realset import video_frames

DEFAULT_INPUT = Path.home() / ".cache" / "edged" / "real" / "vtest.avi"


def measure(frames: list[np.ndarray], threads: int) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Per model: CPU ms a frame after the first (its regions' thread CPU time, on whichever thread they
    ran), invokes a frame after the first, and CPU ms on the first frame; ``cpu`` (the process's CPU
    time) and ``wall`` for all of detection."""
    det = Detector.from_config(DetectConfig(threads=threads))
    invokes: Counter[str] = Counter()
    original = LoadedModel.detect_region

    def counted(self: LoadedModel, bgr: np.ndarray, region: Region, floor: float | None = None) -> Detections:
        invokes[self.cfg.name] += 1
        return original(self, bgr, region, floor)

    spent: dict[str, float] = defaultdict(float)
    first: dict[str, float] = {}
    saved_time = detector_module.time
    LoadedModel.detect_region = counted  # type: ignore[method-assign]
    detector_module.time = type("Clock", (), {"perf_counter": staticmethod(time.thread_time)})  # type: ignore[assignment]
    try:
        for i, frame in enumerate(frames):
            c0, t0 = time.process_time(), time.perf_counter()
            det.detect(frame)
            totals = {"cpu": (time.process_time() - c0) * 1000.0, "wall": (time.perf_counter() - t0) * 1000.0}
            if i == 0:
                first = {**det.last_timings_ms, **totals}
                invokes.clear()
                continue
            for name, ms in {**det.last_timings_ms, **totals}.items():
                spent[name] += ms
    finally:
        LoadedModel.detect_region = original  # type: ignore[method-assign]
        detector_module.time = saved_time
        det.close()
    n = max(1, len(frames) - 1)
    return ({k: v / n for k, v in spent.items()}, {k: v / n for k, v in invokes.items()}, first)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=parse_size, default=parse_size("1280x720"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    frames = [resize(frame, args.size) for frame in video_frames(args.input, args.frames)]
    if len(frames) < 2:
        print(f"{args.input}: fewer than 2 frames read")
        return 1
    per_frame, invokes, first = measure(frames, args.threads)
    h, w = frames[0].shape[:2]
    print(f"{args.input.name} at {w}x{h}, {len(frames)} frames, detect.threads {args.threads}")
    print("| model | ms a frame (after the first) | invokes a frame | first frame ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, ms in per_frame.items():
        calls = f"{invokes[name]:.2f}" if name in invokes else "-"
        print(f"| {name} | {ms:.1f} | {calls} | {first.get(name, 0.0):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
