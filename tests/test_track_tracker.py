"""ByteTrack-style tracker: class separation, two-stage association, lost buffer, births, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from edged.config import TrackConfig
from edged.core.classes import class_id
from edged.core.types import Detections, Exposure, ExposureMode, FrameMeta, Position
from edged.stages.track.ids import MemoryIds
from edged.stages.track.tracker import Tracker, TrackerInputError

FPS = 10.0
CAR, TRUCK, PERSON = class_id("car"), class_id("truck"), class_id("person")
FACE, PLATE = class_id("face"), class_id("plate")


def meta(i: int, width: int = 1280, height: int = 720) -> FrameMeta:
    exposure = Exposure(ExposureMode.MANUAL, 2000, 1)
    return FrameMeta(f"img-{i}", i, "v", 1000.0 + i / FPS, exposure, Position(), width, height)


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    """Rows of ``x1, y1, x2, y2, score, class``."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return Detections(a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int16),
                      np.zeros(len(a), np.float32))


def moving_box(i: int, x0: float = 100, y0: float = 300, vx: float = 20, w: float = 120, h: float = 80):
    x = x0 + vx * i
    return (x, y0, x + w, y0 + h)


def run(tracker: Tracker, frames: list[Detections], start: int = 0):
    return [tracker.update(meta(start + i), d) for i, d in enumerate(frames)]


def make(**kw) -> Tracker:
    return Tracker(TrackConfig(**kw), MemoryIds(), FPS)


def test_a_moving_object_keeps_one_id_and_is_reported_after_confirmation():
    tracker = make()
    steps = run(tracker, [dets((*moving_box(i), 0.9, CAR)) for i in range(30)])
    assert len(steps[0].objects) == 0  # candidate: not yet a track
    ids = {int(t) for s in steps[1:] for t in s.objects.track_ids}
    assert ids == {1}
    assert all(s.objects.detected.all() for s in steps[1:])
    # The reported box of a detected track is the detection's own box.
    np.testing.assert_allclose(steps[-1].objects.boxes[0], moving_box(29), atol=1e-3)


def test_truck_box_never_joins_a_car_track_even_with_perfect_overlap():
    tracker = make()
    run(tracker, [dets((*moving_box(i), 0.9, CAR)) for i in range(5)])
    step = tracker.update(meta(5), dets((*moving_box(5), 0.9, CAR), (*moving_box(5), 0.9, TRUCK)))
    car = step.objects.track_ids[step.objects.class_ids == CAR]
    assert car.tolist() == [1]
    # The truck only starts a candidate of its own class; two frames later it is its own track.
    step = tracker.update(meta(6), dets((*moving_box(6), 0.9, CAR), (*moving_box(6), 0.9, TRUCK)))
    trucks = step.objects.track_ids[step.objects.class_ids == TRUCK]
    assert trucks.tolist() == [2]
    # A truck detection alone where the car is predicted does not feed the car track.
    step = tracker.update(meta(7), dets((*moving_box(7), 0.9, TRUCK)))
    o = step.objects
    assert not o.detected[(o.class_ids == CAR)].any()
    assert o.detected[o.track_ids == 2].all()


def test_low_score_detection_continues_a_track_in_the_second_association():
    tracker = make()
    run(tracker, [dets((*moving_box(i), 0.9, CAR)) for i in range(5)])
    step = tracker.update(meta(5), dets((*moving_box(5), 0.3, CAR)))  # between low_score and high_score
    assert step.objects.track_ids.tolist() == [1]
    assert step.objects.detected.tolist() == [True]
    assert step.objects.scores[0] == pytest.approx(0.3)


def test_low_score_detection_below_low_threshold_is_ignored_and_never_starts_a_track():
    tracker = make()
    run(tracker, [dets((*moving_box(i), 0.9, CAR)) for i in range(5)])
    step = tracker.update(meta(5), dets((*moving_box(5), 0.05, CAR)))
    assert step.objects.detected.tolist() == [False]
    fresh = make()
    steps = run(fresh, [dets((*moving_box(i), 0.4, CAR)) for i in range(10)])
    assert all(len(s.objects) == 0 for s in steps)


def test_low_score_detection_does_not_match_a_far_track():
    """The second association is stricter: a low-score box overlapping the prediction by IoU < 0.5 is not taken."""
    tracker = make()
    run(tracker, [dets((*moving_box(i), 0.9, CAR)) for i in range(5)])
    x1, y1, x2, y2 = moving_box(5)
    step = tracker.update(meta(5), dets((x1 + 60, y1, x2 + 60, y2, 0.3, CAR)))  # IoU ~ 0.33
    assert step.objects.detected.tolist() == [False]
    # The same shift with a high score does match (first association, min IoU 0.2).
    tracker2 = make()
    run(tracker2, [dets((*moving_box(i), 0.9, CAR)) for i in range(5)])
    step = tracker2.update(meta(5), dets((x1 + 60, y1, x2 + 60, y2, 0.9, CAR)))
    assert step.objects.detected.tolist() == [True]


def test_lost_track_is_predicted_then_hidden_and_recovered_with_its_id_within_the_buffer():
    cfg = dict(lost_buffer_s=1.0, predicted_output_s=0.3)
    tracker = make(**cfg)
    frames = [dets((*moving_box(i), 0.9, CAR)) for i in range(10)]
    frames += [Detections() for _ in range(8)]  # 0.8 s gap, inside the 1 s buffer
    frames += [dets((*moving_box(i), 0.9, CAR)) for i in range(18, 25)]
    steps = run(tracker, frames)
    gap = steps[10:18]
    # Reported with predicted boxes for 0.3 s (3 frames), then hidden while still alive.
    assert [len(s.objects) for s in gap] == [1, 1, 1, 0, 0, 0, 0, 0]
    assert not gap[0].objects.detected.any()
    # The prediction keeps moving with the object.
    np.testing.assert_allclose(gap[2].objects.boxes[0], moving_box(12), atol=6)
    assert all(s.objects.track_ids.tolist() == [1] for s in steps[18:])
    assert all(s.ended_ids.size == 0 for s in steps)


def test_lost_track_is_removed_after_the_buffer_and_a_returning_object_gets_a_new_id():
    tracker = make(lost_buffer_s=0.5)
    frames = [dets((100, 300, 220, 380, 0.9, CAR)) for _ in range(5)]
    frames += [Detections() for _ in range(8)]
    frames += [dets((100, 300, 220, 380, 0.9, CAR)) for _ in range(4)]
    steps = run(tracker, frames)
    ended = [i for i, s in enumerate(steps) if s.ended_ids.size]
    assert ended == [10] and steps[10].ended_ids.tolist() == [1]  # 0.6 s after the last detection (frame 4)
    assert steps[-1].objects.track_ids.tolist() == [2]


def test_one_frame_false_positive_never_becomes_a_track():
    tracker = make()
    steps = run(tracker, [dets((500, 500, 560, 600, 0.95, PERSON)), Detections(), Detections()])
    assert all(len(s.objects) == 0 for s in steps)
    assert all(s.ended_ids.size == 0 for s in steps)
    assert tracker.update(meta(3), dets((*moving_box(0), 0.9, CAR))).objects.track_ids.size == 0


def test_birth_needs_birth_score():
    tracker = make()
    steps = run(tracker, [dets((*moving_box(i), 0.55, CAR)) for i in range(5)])  # high but below birth_score 0.6
    assert all(len(s.objects) == 0 for s in steps)


def test_faces_and_plates_are_tracked_from_their_own_lower_scores():
    """A face or plate at 0.45 (below the general birth and high scores) starts a track; a car does not."""
    tracker = make()
    frames = [dets((*moving_box(i), 0.45, CAR), (*moving_box(i, y0=100), 0.45, FACE), (*moving_box(i, y0=500), 0.45, PLATE))
              for i in range(5)]
    last = run(tracker, frames)[-1].objects
    assert sorted(last.class_ids.tolist()) == sorted([FACE, PLATE])
    # and 0.45 is a high score for them: a track is followed through the first association
    assert last.detected.all() and len(set(last.track_ids.tolist())) == 2
    strict = make(sensitive_high_score=0.6, sensitive_birth_score=0.6)
    assert len(run(strict, frames)[-1].objects) == 0


def test_a_track_reports_the_score_it_started_with():
    """A track is as sure as the higher of its first and its last score."""
    tracker = make()
    steps = run(tracker, [dets((*moving_box(i), s, FACE)) for i, s in enumerate((0.7, 0.9, 0.3, 0.2))])
    last = steps[-1].objects
    assert last.scores.tolist() == pytest.approx([0.2]) and last.first_scores.tolist() == pytest.approx([0.7])
    assert last.confidences().tolist() == pytest.approx([0.7])
    assert steps[1].objects.confidences().tolist() == pytest.approx([0.9])
    faint = run(make(), [dets((*moving_box(i), s, FACE)) for i, s in enumerate((0.45, 0.3, 0.2))])[-1].objects
    assert faint.confidences().tolist() == pytest.approx([0.45])


def test_sensitive_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="sensitive_high_score <= sensitive_birth_score"):
        TrackConfig(sensitive_high_score=0.5, sensitive_birth_score=0.4)
    with pytest.raises(ValueError, match="low_score <= sensitive_high_score"):
        TrackConfig(low_score=0.3, sensitive_high_score=0.2)


def test_confirm_hits_one_reports_a_new_track_at_once():
    tracker = make(confirm_hits=1)
    step = tracker.update(meta(0), dets((*moving_box(0), 0.9, CAR)))
    assert step.objects.track_ids.tolist() == [1]


def test_two_crossing_objects_of_one_class_keep_their_ids():
    tracker = make()
    frames = []
    for i in range(40):
        a = (100 + 25 * i, 300, 220 + 25 * i, 380, 0.9, CAR)
        b = (1100 - 25 * i, 420, 1220 - 25 * i, 500, 0.9, CAR)
        frames.append(dets(a, b))
    steps = run(tracker, frames)
    for s in steps[1:]:
        o = s.objects
        top = o.track_ids[np.argmin(o.boxes[:, 1])]
        assert top == 1


def test_track_leaving_the_image_is_ended_when_predicted_outside():
    tracker = make(lost_buffer_s=10.0)
    frames = [dets((1000 + 40 * i, 300, 1120 + 40 * i, 380, 0.9, CAR)) for i in range(5)]  # up to x1=1160
    frames += [Detections() for _ in range(6)]
    steps = run(tracker, frames)
    ended_at = [i for i, s in enumerate(steps) if s.ended_ids.size]
    assert ended_at and ended_at[0] <= 8  # predicted past x=1280 within a few frames, not after 10 s


def border_handover(**kw) -> tuple[set[int], set[int]]:
    """A near car leaves through the right border just as a far car enters there going the other
    way (both boxes are slivers at the border; numbers from the 5-minute simulation). Returns the
    track ids the leaving car and the entering car were reported under."""
    tracker = make(**kw)
    leaving = [(250 + 110 * i, 340, 687 + 110 * i, 560) for i in range(6)]  # wholly in view, x2 up to 1237
    leaving += [(908, 343, 1280, 563), (1025, 317, 1280, 557)]  # clipped by the border, shrinking
    entering = [(1040, 322, 1279, 495), (951, 302, 1271, 461), (878, 317, 1177, 450), (800, 317, 1100, 450),
                (725, 317, 1025, 450)]
    steps = run(tracker, [dets((*b, 0.95, CAR)) for b in leaving])
    steps += run(tracker, [dets((*b, 0.95, CAR)) for b in entering], start=len(leaving))
    ids_leaving = {int(t) for s in steps[: len(leaving)] for t in s.objects.track_ids[s.objects.detected]}
    ids_entering = {int(t) for s in steps[len(leaving) :] for t in s.objects.track_ids[s.objects.detected]}
    return ids_leaving, ids_entering


def test_a_car_entering_where_another_leaves_gets_its_own_track():
    ids_leaving, ids_entering = border_handover()
    assert len(ids_leaving) == 1 and ids_entering and not ids_leaving & ids_entering
    # without the rule (any growth allowed) the entering car takes the leaving car's track
    ids_leaving, ids_entering = border_handover(leaving_growth=100.0)
    assert ids_leaving & ids_entering


def test_what_is_left_of_a_leaving_car_stays_its_track():
    tracker = make()
    boxes = [(700 + 110 * i, 340, 1137 + 110 * i, 560) for i in range(2)]
    boxes += [(min(920 + 110 * i, 1279), 340, 1280, 560) for i in range(4)]  # 360, 250, 140, 30 px left
    steps = run(tracker, [dets((*b, 0.9, CAR)) for b in boxes])
    assert {int(t) for s in steps[1:] for t in s.objects.track_ids[s.objects.detected]} == {1}


def test_many_tracks_of_several_classes():
    tracker = make()
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 1000, (12, 2))
    classes = [CAR, TRUCK, PERSON] * 4
    for i in range(20):
        rows = [(x + 5 * i, y % 600, x + 5 * i + 60, y % 600 + 60, 0.9, c)
                for (x, y), c in zip(starts, classes, strict=True)]
        step = tracker.update(meta(i), dets(*rows))
    assert len(step.objects) == 12
    assert len(set(step.objects.track_ids.tolist())) == 12


@pytest.mark.parametrize(
    "bad, message",
    [
        (Detections(np.zeros((2, 4), np.float32), np.zeros(1, np.float32), np.zeros(2, np.int16),
                    np.zeros(2, np.float32)), "scores"),
        (Detections(np.full((1, 4), np.nan, np.float32), np.ones(1, np.float32), np.zeros(1, np.int16),
                    np.zeros(1, np.float32)), "NaN"),
        (Detections(np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.full(1, 99, np.int16),
                    np.zeros(1, np.float32)), "class id 99"),
    ],
)
def test_malformed_detections_are_refused_without_changing_state(bad, message):
    tracker = make()
    run(tracker, [dets((*moving_box(i), 0.9, CAR)) for i in range(3)])
    before = tracker.tracks.mean.copy()
    with pytest.raises(TrackerInputError, match=message):
        tracker.update(meta(3), bad)
    np.testing.assert_array_equal(tracker.tracks.mean, before)
    assert tracker.update(meta(3), dets((*moving_box(3), 0.9, CAR))).objects.track_ids.tolist() == [1]


def test_timestamps_must_increase():
    tracker = make()
    tracker.update(meta(5), Detections())
    with pytest.raises(TrackerInputError, match="not after"):
        tracker.update(meta(5), Detections())


def test_a_dropped_frame_predicts_two_steps_ahead():
    tracker = make()
    run(tracker, [dets((*moving_box(i, vx=30), 0.9, CAR)) for i in range(10)])
    # frame 10 is dropped; frame 11 arrives 0.2 s later with the object 60 px further
    step = tracker.update(meta(11), dets((*moving_box(11, vx=30), 0.35, CAR)))  # low score: needs IoU >= 0.5
    assert step.objects.detected.tolist() == [True]


def test_a_recorded_run_is_reproduced():
    """Ids, classes, detected flags, ended ids and boxes (to 0.01 px) of a 30 s scripted scene, as the tracker
    gave them before its phases were split into methods and sped up: a change of what it computes fails here."""
    import hashlib

    from tools.eval.tracking import FPS, Noise, make_scene

    scene = make_scene("synthetic", 5, 30.0, noise=Noise(fp_per_frame=0.5))
    tracker = Tracker(TrackConfig(), MemoryIds(), FPS)
    digest = hashlib.sha256()
    for m, d in zip(scene.metas, scene.dets, strict=True):
        step = tracker.update(m, d)
        o = step.objects
        digest.update(np.concatenate([o.track_ids, o.class_ids, o.detected, step.ended_ids]).astype(np.int64).tobytes())
        digest.update(np.round(o.boxes.astype(np.float64), 2).tobytes())
    assert tracker.ids.next_id() == 27
    assert digest.hexdigest() == "2fae6b8d2530fa77ef163b7787a7f26518d2c9d576a49f9ff39d69d0fd5c9c37"


def test_assign_gives_what_lapjv_gives():
    """The shortcut for pairs that do not conflict returns lapjv's optimum; conflicting ones go to lapjv."""
    import lap

    from edged.stages.track.tracker import assign

    rng = np.random.default_rng(4)
    shortcut = 0
    for trial in range(400):
        n, m = rng.integers(1, 9, 2)
        iou = np.where(rng.random((n, m)) < rng.uniform(0.05, 0.6), rng.random((n, m)), 0.0)
        min_iou = float(rng.choice([0.2, 0.3, 0.5]))
        if trial % 7 == 0:
            iou[0, 0] = min_iou  # on the limit: lapjv takes it (the slack)
        pairs, free_rows, free_cols = assign(iou, min_iou)
        _, row_to_col, col_to_row = lap.lapjv(1.0 - iou, extend_cost=True, cost_limit=1.0 - min_iou + 1e-9)
        rows = np.flatnonzero(row_to_col >= 0)
        np.testing.assert_array_equal(pairs, np.column_stack([rows, row_to_col[rows]]))
        np.testing.assert_array_equal(free_rows, np.flatnonzero(row_to_col < 0))
        np.testing.assert_array_equal(free_cols, np.flatnonzero(col_to_row < 0))
        assert pairs.dtype == free_rows.dtype == free_cols.dtype == np.int64
        shortcut += int(((iou >= min_iou).sum(axis=0) <= 1).all() and ((iou >= min_iou).sum(axis=1) <= 1).all())
    assert 50 < shortcut < 350  # both ways were taken


def random_scene(seed: int, n: int, frames: int = 120, width: int = 1280,
                 height: int = 720) -> list[tuple[FrameMeta, Detections]]:
    """Boxes of four classes moving across (and out of, and back into) the image, noisy, some missed, scores
    from 0 to 1, a few false positives, some dropped frames: every phase and both kinds of assignment."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform((-100, -100), (width, height), (n, 2))
    vel = rng.normal(0, 12, (n, 2))
    size = rng.uniform(20, 300, (n, 2))
    cls = rng.integers(0, 4, n)
    out, t = [], 1000.0
    for i in range(frames):
        t += (2 if rng.random() < 0.05 else 1) / FPS
        pos += vel
        pos[:, 0] = (pos[:, 0] + 150) % (width + 300) - 150
        pos[:, 1] = (pos[:, 1] + 150) % (height + 300) - 150
        keep = rng.random(n) > 0.15
        boxes = np.concatenate([pos, pos + size], axis=1) + rng.normal(0, 3, (n, 4))
        extra = int(rng.poisson(0.5))
        xy = rng.uniform(0, (width, height), (extra, 2))
        boxes = np.concatenate([boxes[keep], np.concatenate([xy, xy + rng.uniform(10, 100, (extra, 2))], axis=1)])
        boxes = np.clip(boxes, 0, (width, height, width, height))
        k = boxes.shape[0]
        scores = np.where(rng.random(k) < 0.8, rng.uniform(0, 1, k), rng.choice([0.1, 0.3, 0.5, 0.6, 0.7], k))
        classes = np.concatenate([cls[keep], rng.integers(0, 4, extra)])
        m = FrameMeta(f"img-{i}", i, "v", t, Exposure(ExposureMode.MANUAL, 2000, 1), Position(), width, height)
        out.append((m, Detections(boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int16),
                                  rng.uniform(-0.3, 0.3, k).astype(np.float32))))
    return out


@pytest.mark.parametrize("config", [TrackConfig(), TrackConfig(confirm_hits=1, min_iou_first=0.5, lost_buffer_s=0.5),
                                    TrackConfig(min_iou_first=0.0, min_iou_candidate=0.0, min_iou_second=0.0)],
                         ids=["default", "quick", "zero-iou"])
@pytest.mark.parametrize("seed, n", [(0, 4), (2, 30)])
def test_a_busy_random_scene_keeps_the_tracker_invariants(config, seed, n):
    tracker = Tracker(config, MemoryIds(), FPS)
    class_of: dict[int, int] = {}
    ended: set[int] = set()
    for m, d in random_scene(seed, n):
        step = tracker.update(m, d)
        o = step.objects
        ids = o.track_ids.tolist()
        assert len(set(ids)) == len(ids)
        assert not ended & set(ids)
        for i, c in zip(ids, o.class_ids.tolist(), strict=True):
            assert class_of.setdefault(i, c) == c  # a track never changes class
        det_rows = {tuple(b) for b in d.boxes.tolist()}
        assert all(tuple(b) in det_rows for b in o.boxes[o.detected].tolist())  # a detected box is the detection's
        assert (o.boxes >= 0).all() and (o.boxes[:, 2] <= m.width).all() and (o.boxes[:, 3] <= m.height).all()
        ended |= set(step.ended_ids.tolist())
        assert tracker.live_ids().tolist() == tracker.tracks.ids[tracker.tracks.confirmed].tolist()
    assert class_of  # tracks were reported


@pytest.mark.parametrize("dtype, tracked", [(np.float32, True), (np.float64, False)])
def test_scores_meet_the_thresholds_in_their_own_dtype(dtype, tracked):
    """A float32 score of 0.7 meets a 0.7 threshold (compared in float32); the same value in float64 is below."""
    tracker = make(high_score=0.7, low_score=0.3, birth_score=0.7, confirm_hits=1)
    d = dets((*moving_box(0), 0.7, CAR))
    step = tracker.update(meta(0), Detections(d.boxes, d.scores.astype(dtype), d.class_ids, d.angles))
    assert (len(step.objects) == 1) is tracked
