"""Where the detect stage's time goes: CPU time of each default model a frame, on a real clip.

    python -m tools.bench.detect_cost [--input VIDEO] [--frames 150] [--size 1280x720] [--threads 1]

Runs :class:`edged.stages.detect.detector.Detector` with the default models on the clip's frames
(resized with :func:`tools.bench.vs_deface.resize` when ``--size`` is given) and prints, per model, the
milliseconds a frame (thread CPU time at ``--threads 1``, so what the model costs the machine;
wall time otherwise) and its invokes a frame. A stream's first frame (the scans' whole-frame pass)
is reported apart. OpenCV runs on the calling thread, as in the daemon.
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
    """Per model: ms a frame after the first, invokes a frame after the first, and ms on the first frame."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    det = Detector.from_config(DetectConfig(threads=threads))
    invokes: Counter[str] = Counter()
    original = LoadedModel.detect_region

    def counted(self: LoadedModel, bgr: np.ndarray, region: Region) -> Detections:
        invokes[self.cfg.name] += 1
        return original(self, bgr, region)

    spent: dict[str, float] = defaultdict(float)
    first: dict[str, float] = {}
    saved_time = detector_module.time
    LoadedModel.detect_region = counted  # type: ignore[method-assign]
    detector_module.time = type("Clock", (), {"perf_counter": staticmethod(clock)})  # type: ignore[assignment]
    try:
        for i, frame in enumerate(frames):
            t0 = clock()
            det.detect(frame)
            total = (clock() - t0) * 1000.0
            if i == 0:
                first = {**det.last_timings_ms, "all": total}
                invokes.clear()
                continue
            for name, ms in det.last_timings_ms.items():
                spent[name] += ms
            spent["all"] += total
    finally:
        LoadedModel.detect_region = original  # type: ignore[method-assign]
        detector_module.time = saved_time
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
    unit = "CPU ms" if args.threads == 1 else "wall ms"
    h, w = frames[0].shape[:2]
    print(f"{args.input.name} at {w}x{h}, {len(frames)} frames, detect.threads {args.threads}")
    print(f"| model | {unit} a frame (after the first) | invokes a frame | first frame {unit} |")
    print("| --- | ---: | ---: | ---: |")
    for name, ms in per_frame.items():
        calls = f"{invokes[name]:.2f}" if name in invokes else "-"
        print(f"| {name} | {ms:.1f} | {calls} | {first.get(name, 0.0):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
