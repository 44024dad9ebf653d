"""The detector's regions on worker threads: side by side where models need nothing from each other,
the same boxes as on one thread, and no threads left behind."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import DetectConfig
from edged.core.types import Detections
from edged.stages.detect.detector import Detector, LoadedModel, Region

REAL = Path(__file__).resolve().parent / "data" / "real"


def street_frames() -> list[np.ndarray]:
    """Two real street frames at 1280x720, the second shifted a little (so the scan has changes to look at)."""
    frame = cv2.resize(cv2.imread(str(REAL / "vtest_0300.jpg")), (1280, 720))
    return [frame, np.roll(frame, (6, 9), axis=(0, 1))]


def boxes(found: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return found.boxes, found.scores, found.class_ids


@pytest.fixture(scope="module")
def serial_and_parallel() -> tuple[Detector, Detector]:
    return Detector.from_config(DetectConfig(threads=1)), Detector.from_config(DetectConfig(threads=2))


def test_two_threads_find_exactly_what_one_thread_finds(serial_and_parallel: tuple[Detector, Detector]) -> None:
    serial, parallel = serial_and_parallel
    for d in (serial, parallel):
        d.reset()
    for frame in street_frames():
        one, two = serial.detect(frame), parallel.detect(frame)
        assert len(one) > 5
        for a, b in zip(boxes(one), boxes(two), strict=True):
            np.testing.assert_array_equal(a, b)
    assert set(parallel.last_timings_ms) == set(serial.last_timings_ms)


def test_models_that_need_nothing_from_each_other_run_side_by_side(
        serial_and_parallel: tuple[Detector, Detector], monkeypatch: pytest.MonkeyPatch) -> None:
    """The object model and the whole-frame face model overlap in time, on two threads."""
    _, parallel = serial_and_parallel
    spans: dict[str, list[tuple[float, float, int]]] = {}
    original = LoadedModel.detect_region

    def recorded(self: LoadedModel, bgr: np.ndarray, region: Region, floor: float | None = None) -> Detections:
        t0 = time.perf_counter()
        try:
            return original(self, bgr, region, floor)
        finally:
            spans.setdefault(self.cfg.name, []).append((t0, time.perf_counter(), threading.get_ident()))

    monkeypatch.setattr(LoadedModel, "detect_region", recorded)
    parallel.reset()
    parallel.detect(street_frames()[0])
    (obj_start, obj_end, obj_thread), = spans["objects"]
    (face_start, face_end, face_thread), = spans["face_frame"]
    assert obj_thread != face_thread
    assert obj_start < face_end and face_start < obj_end
    assert threading.get_ident() not in {t for runs in spans.values() for _, _, t in runs}


def test_a_model_waits_only_for_the_models_whose_classes_it_reads(
        serial_and_parallel: tuple[Detector, Detector]) -> None:
    _, parallel = serial_and_parallel
    names = [m.cfg.name for m in parallel.models]
    reads = {names[i]: [names[j] for j in sources] for i, sources in enumerate(parallel.sources)}
    assert reads == {"objects": [], "face": ["objects"], "face_frame": [], "face_scan": ["objects"],
                     "plate": ["objects"], "plate_text": ["objects"], "plate_scan": ["objects"]}


def test_a_failing_region_raises_from_detect(monkeypatch: pytest.MonkeyPatch) -> None:
    det = Detector.from_config(DetectConfig(threads=2))

    def broken(self: LoadedModel, bgr: np.ndarray, region: Region, floor: float | None = None) -> Detections:
        raise RuntimeError(f"{self.cfg.name} broke")

    monkeypatch.setattr(LoadedModel, "detect_region", broken)
    with pytest.raises(RuntimeError, match="broke"):
        det.detect(street_frames()[0])
    det.close()


def test_a_detector_no_longer_used_lets_its_threads_go() -> None:
    before = set(threading.enumerate())
    det = Detector.from_config(DetectConfig(threads=2))
    det.detect(street_frames()[0])
    workers = [t for t in threading.enumerate() if t not in before]
    assert len(workers) == 2
    del det
    gc.collect()
    for worker in workers:
        worker.join(timeout=5)
        assert not worker.is_alive()
