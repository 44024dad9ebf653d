"""Benchmark: how long the fake camera takes to render one frame.

    python -m tools.bench.fake [--frames 1200] [--width 1280 --height 720] [--no-write]

Runs the default seeded scene the way the daemon drives it: auto exposure for the first second,
then locked at 2 ms with the gain AE implied (the meter-and-lock exposure rule), and a second run that stays
in auto exposure (sprites are re-blurred whenever the shutter changes). Prints per-frame
``capture()`` times and writes the ``fake-camera`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from edged_sim.camera import FakeCamera
from tools.bench.doc import git_revision, machine_line, write_section


def run(frames: int, width: int, height: int, lock: bool) -> np.ndarray:
    cam = FakeCamera(width, height, fps=10.0, seed=7, t0=0.0)
    cam.start()
    times = np.empty(frames)
    for k in range(frames):
        if lock and k == 10:
            e = cam.read_exposure()
            cam.set_manual_exposure(2000.0, e.shutter_us * e.gain / 2000.0)
        t = time.perf_counter()
        cam.capture()
        times[k] = time.perf_counter() - t
    return times * 1000.0


def summary(ms: np.ndarray) -> str:
    return (
        f"mean {ms.mean():.2f} ms, median {np.median(ms):.2f}, p90 {np.percentile(ms, 90):.2f}, "
        f"p99 {np.percentile(ms, 99):.2f}, max {ms.max():.1f}; {100 * (ms > 10).mean():.1f} % of frames "
        f"over 10 ms; {1000 / ms.mean():.0f} fps if rendering alone"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    t = time.perf_counter()
    FakeCamera(args.width, args.height, seed=7, t0=0.0)
    init_ms = (time.perf_counter() - t) * 1000
    locked = run(args.frames, args.width, args.height, lock=True)
    auto = run(args.frames, args.width, args.height, lock=False)
    lines = [
        f"construct: {init_ms:.0f} ms (scenario, background)",
        f"locked 2 ms ({args.frames} frames): {summary(locked[1:])}",
        f"auto exposure ({args.frames} frames): {summary(auto[1:])}",
        f"first frame: {locked[0]:.0f} ms",
        f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        f"({len(os.sched_getaffinity(0))} usable by this process)",
    ]
    print("\n".join(lines))
    if not args.no_write:
        pinned = len(os.sched_getaffinity(0)) < (os.cpu_count() or 1)
        cmd = ("taskset -c 0,1 " if pinned else "") + "python -m tools.bench.fake"
        cmd += f" --frames {args.frames}" if args.frames != 1200 else ""
        body = "\n".join(
            [
                f"## Fake camera render time ({args.width}x{args.height}, seed 7)",
                "",
                f"Command: `{cmd}` (rev {git_revision()})  ",
                f"Machine: {machine_line()}",
                "",
                *[f"- {line}" for line in lines],
                "",
                "Frames over 10 ms are the ones where a new actor enters (its picture is drawn once) or,",
                "in auto exposure, where the shutter change re-blurs sprites.",
            ]
        )
        write_section("fake-camera", body)


if __name__ == "__main__":
    main()
