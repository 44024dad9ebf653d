"""The tracker's scalar step (few tracks and detections) gives exactly what its array step gives."""

from __future__ import annotations

import numpy as np
import pytest

from edged.config import TrackConfig
from edged.core.types import Detections, Exposure, ExposureMode, FrameMeta, Position
from edged.stages.track.ids import MemoryIds
from edged.stages.track.tracker import SCALAR_MAX, Tracker

FPS = 10.0
W, H = 1280, 720


def random_scene(seed: int, n: int, frames: int = 120) -> list[tuple[FrameMeta, Detections]]:
    """Boxes of four classes moving across (and out of, and back into) the image, noisy, some missed, scores
    from 0 to 1, a few false positives, some dropped frames: every phase and both kinds of assignment."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform((-100, -100), (W, H), (n, 2))
    vel = rng.normal(0, 12, (n, 2))
    size = rng.uniform(20, 300, (n, 2))
    cls = rng.integers(0, 4, n)
    out, t = [], 1000.0
    for i in range(frames):
        t += (2 if rng.random() < 0.05 else 1) / FPS
        pos += vel
        pos[:, 0] = (pos[:, 0] + 150) % (W + 300) - 150
        pos[:, 1] = (pos[:, 1] + 150) % (H + 300) - 150
        keep = rng.random(n) > 0.15
        boxes = np.concatenate([pos, pos + size], axis=1) + rng.normal(0, 3, (n, 4))
        extra = int(rng.poisson(0.5))
        xy = rng.uniform(0, (W, H), (extra, 2))
        boxes = np.concatenate([boxes[keep], np.concatenate([xy, xy + rng.uniform(10, 100, (extra, 2))], axis=1)])
        boxes = np.clip(boxes, 0, (W, H, W, H))
        k = boxes.shape[0]
        scores = np.where(rng.random(k) < 0.8, rng.uniform(0, 1, k), rng.choice([0.1, 0.3, 0.5, 0.6, 0.7], k))
        classes = np.concatenate([cls[keep], rng.integers(0, 4, extra)])
        meta = FrameMeta(f"img-{i}", i, "v", t, Exposure(ExposureMode.MANUAL, 2000, 1), Position(), W, H)
        out.append((meta, Detections(boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int16),
                                     rng.uniform(-0.3, 0.3, k).astype(np.float32))))
    return out


def run(scene: list[tuple[FrameMeta, Detections]], config: TrackConfig, scalar_max: int,
        switch_every: int = 0) -> tuple[list, Tracker]:
    """Outputs of every frame and the tracker; ``switch_every`` frames, the limit goes from ``scalar_max``
    to "always arrays" and back."""
    tracker = Tracker(config, MemoryIds(), FPS)
    steps = []
    tracker.in_rows = []  # which step each frame took (True: the scalar one)
    for i, (meta, dets) in enumerate(scene):
        tracker.scalar_max = -1 if switch_every and (i // switch_every) % 2 else scalar_max
        step = tracker.update(meta, dets)
        tracker.in_rows.append(tracker._in_rows)
        o = step.objects
        steps.append([a.copy() for a in (o.track_ids, o.class_ids, o.boxes, o.scores, o.angles, o.detected,
                                         step.ended_ids)])
    return steps, tracker


def assert_same(a: tuple[list, Tracker], b: tuple[list, Tracker]) -> None:
    for frame, (x, y) in enumerate(zip(a[0], b[0], strict=True)):
        for u, v in zip(x, y, strict=True):
            assert u.dtype == v.dtype and u.shape == v.shape, frame
            assert u.tobytes() == v.tobytes(), frame  # bit for bit (signs of zeros included)
    ta, tb = a[1].tracks, b[1].tracks
    for name in ("ids", "mean", "cov", "obs", "tracked"):
        assert getattr(ta, name).tobytes() == getattr(tb, name).tobytes(), name
    assert a[1].ids._next == b[1].ids._next  # ids handed out


CONFIGS = [
    TrackConfig(),
    TrackConfig(confirm_hits=1, min_iou_first=0.5, lost_buffer_s=0.5),
    TrackConfig(min_iou_first=0.0, min_iou_candidate=0.0, min_iou_second=0.0),  # every cell a candidate pair
    # thresholds that float32 rounds down (0.7, 0.3): numpy compares the float32 scores in float32
    TrackConfig(high_score=0.7, low_score=0.3, birth_score=0.7, candidate_buffer=0.0, leaving_growth=0.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "quick", "zero-iou", "rounded-scores"])
@pytest.mark.parametrize("seed, n", [(0, 4), (1, 12), (2, 30)])
def test_scalar_step_is_bit_identical_to_array_step(config, seed, n):
    scene = random_scene(seed, n)
    arrays = run(scene, config, scalar_max=-1)
    assert not any(arrays[1].in_rows)
    scalar = run(scene, config, scalar_max=10**9)
    assert all(scalar[1].in_rows)
    assert_same(arrays, scalar)
    # changing from one step to the other (the state converted each time), every few frames
    mixed = run(scene, config, scalar_max=10**9, switch_every=7)
    assert_same(arrays, mixed)
    assert sum(a != b for a, b in zip(mixed[1].in_rows, mixed[1].in_rows[1:], strict=False)) >= 10


def test_recorded_scene_both_ways_and_the_switch_is_taken():
    from tools.eval.tracking import FPS as SCENE_FPS
    from tools.eval.tracking import Noise, make_scene

    scene = make_scene("synthetic", 5, 20.0, noise=Noise(fp_per_frame=0.5))
    pairs = list(zip(scene.metas, scene.dets, strict=True))
    steps = {}
    for limit in (-1, 12, SCALAR_MAX, 10**9):
        tracker = Tracker(TrackConfig(), MemoryIds(), SCENE_FPS)
        tracker.scalar_max = limit
        steps[limit] = [tracker.update(m, d) for m, d in pairs]
    tracker = Tracker(TrackConfig(), MemoryIds(), SCENE_FPS)
    tracker.scalar_max = 12
    in_rows = []
    for m, d in pairs:
        tracker.update(m, d)
        in_rows.append(tracker._in_rows)
    changes = sum(a != b for a, b in zip(in_rows, in_rows[1:], strict=False))
    assert changes >= 4, changes  # the limit of 12 (back at 9) is crossed both ways in this scene
    for limit in (12, SCALAR_MAX, 10**9):
        for a, b in zip(steps[-1], steps[limit], strict=True):
            assert b.objects.boxes.tobytes() == a.objects.boxes.tobytes()
            assert b.objects.track_ids.tolist() == a.objects.track_ids.tolist()
            assert b.objects.detected.tolist() == a.objects.detected.tolist()
            assert b.ended_ids.tolist() == a.ended_ids.tolist()


def test_the_tracks_read_as_arrays_between_scalar_steps():
    tracker = Tracker(TrackConfig(), MemoryIds(), FPS)
    scene = random_scene(3, 5, frames=10)
    for meta, dets in scene[:5]:
        tracker.update(meta, dets)
    ids = tracker.live_ids()
    assert tracker.tracks.ids[tracker.tracks.confirmed].tolist() == ids.tolist()
    reference = Tracker(TrackConfig(), MemoryIds(), FPS)
    reference.scalar_max = -1
    for meta, dets in scene[:5]:
        reference.update(meta, dets)
    for meta, dets in scene[5:]:
        a, b = tracker.update(meta, dets), reference.update(meta, dets)
        assert a.objects.boxes.tobytes() == b.objects.boxes.tobytes()
        assert a.objects.track_ids.tolist() == b.objects.track_ids.tolist()


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_scores_of_another_dtype_meet_the_thresholds_as_numpy_compares_them(dtype):
    """float64 scores are compared in float64, float16 ones in float16 (0.7 is below 0.7 in float32 only)."""
    config = TrackConfig(high_score=0.7, low_score=0.3, birth_score=0.7)
    scene = [(m, Detections(d.boxes, d.scores.astype(dtype), d.class_ids, d.angles)) for m, d in random_scene(5, 10)]
    assert_same(run(scene, config, scalar_max=-1), run(scene, config, scalar_max=10**9))
