"""Short version of tools/bench/detect_cost.py: per-model cost a frame on real frames."""

from __future__ import annotations

from pathlib import Path

import cv2

from tools.bench.detect_cost import measure

REAL = Path(__file__).resolve().parent / "data" / "real"


def test_each_default_model_is_timed_and_counted_after_the_first_frame() -> None:
    frames = [cv2.resize(cv2.imread(str(REAL / name)), (480, 360)) for name in ("vtest_0000.jpg", "vtest_0300.jpg")]
    per_frame, invokes, first = measure(frames + [frames[1].copy()], threads=1)
    models = {"objects", "face", "face_frame", "face_scan", "plate", "plate_text", "plate_scan"}
    assert set(per_frame) == models | {"cpu", "wall"} and set(first) == models | {"cpu", "wall"}
    assert invokes["objects"] == 1.0 and invokes["face_frame"] == 1.0  # whole-frame models: once a frame
    # the scan's budget after the first frame: 6 windows, a sweep, up to 4 closer follows and 4 second looks
    assert invokes["face_scan"] <= 15
    assert first["face_scan"] > per_frame["face_scan"]  # the first frame is scanned whole
    assert per_frame["cpu"] >= max(v for k, v in per_frame.items() if k not in ("cpu", "wall"))
