"""Observations per track: fields copied from the frame, ground points, bounded history, trails."""

from __future__ import annotations

import numpy as np

from edged.config import CalibrationConfig, from_dict
from edged.core.types import Detections, Exposure, ExposureMode, Frame, FrameMeta, Position, TrackedObjects
from edged.stages.track.calibration import GroundProjector
from edged.stages.track.ids import MemoryIds
from edged.stages.track.observations import TrackHistory
from edged.stages.track.stage import Tracking, TrackStage

W, H = 1280, 720


def meta(i: int, manual: bool = True) -> FrameMeta:
    return FrameMeta(f"img-{i:04d}", i, "seg-1", 500.0 + i / 10,
                     Exposure(ExposureMode.MANUAL if manual else ExposureMode.AUTO, 2000.0, 3.5),
                     Position(51.5, -0.12, 30.0), W, H)


def objects(rows, detected=None) -> TrackedObjects:
    n = len(rows)
    return TrackedObjects(
        np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int16),
        np.array([r[2] for r in rows], np.float32).reshape(-1, 4), np.array([r[3] for r in rows], np.float32),
        np.array([r[4] if len(r) > 4 else 0.0 for r in rows], np.float32),
        np.ones(n, bool) if detected is None else np.array(detected),
    )


def test_observation_fields_come_from_the_frame_and_the_detection():
    hmat = [[0.01, 0.0, -6.4], [0.0, -0.02, 14.4], [0.0, 0.0, 1.0]]  # u -> x metres, v -> y metres (up = far)
    projector = GroundProjector.from_config(CalibrationConfig(model="homography", homography=hmat), W, H)
    history = TrackHistory(8, projector)
    rows = [(9, 3, (100, 200, 300, 400), 0.8, 0.1), (4, 2, (0, 0, 10, 10), 0.3)]
    obs = history.record(meta(3, manual=False), objects(rows, detected=[True, False]))
    assert obs.track_ids.tolist() == [9]  # predicted (undetected) rows are not observations
    row = obs.rows[0]
    assert (row["timestamp"], row["frame_index"], row["image_id"], bool(row["manual"])) == (500.3, 3, "img-0003", False)
    assert (row["lat"], row["lon"], row["alt"]) == (51.5, -0.12, 30.0)
    assert row["box"].tolist() == [100, 200, 300, 400] and row["score"] == np.float32(0.8)
    assert row["angle"] == np.float32(0.1)
    # bottom centre of the (rotated) box through the homography
    bottom = np.array([200 - np.sin(0.1) * 100, 300 + np.cos(0.1) * 100])
    np.testing.assert_allclose(row["ground"], [0.01 * bottom[0] - 6.4, -0.02 * bottom[1] + 14.4], atol=1e-4)
    assert obs.counts.tolist() == [1]


def test_history_is_bounded_keeps_the_first_observation_and_counts_all():
    history = TrackHistory(4, GroundProjector(None))
    for i in range(10):
        obs = history.record(meta(i), objects([(1, 3, (10 * i, 0, 10 * i + 50, 50), 0.9)]))
    assert obs.counts.tolist() == [10]
    kept = history.observations(1)
    assert kept["frame_index"].tolist() == [6, 7, 8, 9]
    assert np.isnan(kept["ground"]).all()
    (trail,) = history.end([1, 77])
    assert trail.count == 10 and trail.first["frame_index"] == 0
    assert trail.recent["frame_index"].tolist() == [6, 7, 8, 9]
    assert len(history) == 0


def test_track_stage_fills_the_pipeline_bundle_and_emits_trail_events():
    from edged.stages.pipeline import FrameWork

    config = from_dict({"calibration": {"model": "pinhole", "fx": 1000, "fy": 1000, "height_m": 6.0,
                                        "pitch_deg": 20.0}})
    stage = TrackStage(Tracking.from_config(config, MemoryIds()))
    events = []
    for i in range(60):  # 20 frames seen, then lost until it ends (3 s buffer, or predicted out of view)
        m = meta(i)
        if i < 20:  # a car driving right (east) across the image, low in the frame
            box = np.array([[100 + 30 * i, 450, 260 + 30 * i, 540]], np.float32)
            dets = Detections(box, np.array([0.9], np.float32), np.array([3], np.int16), np.zeros(1, np.float32))
        else:
            dets = Detections()
        work = FrameWork(Frame(m, np.zeros((1, 1, 3), np.uint8)), detections=dets)
        stage(work)
        events += work.events
        if i == 5:
            assert work.tracks.track_ids.tolist() == [1]
            assert work.observations.track_ids.tolist() == [1]
    (trail,) = events
    event = trail.body()
    assert event["kind"] == "trail" and event["track_id"] == 1 and event["class"] == "car"
    assert event["observations"] == 19  # confirmed at its second frame
    assert 80 < event["direction_deg"] < 100  # moving east
    assert event["speed_mps"] > 0 and event["entry"]["ground"] is not None
    assert 80 < event["image_direction_deg"] < 100
    assert (trail.kind, trail.track_id, trail.class_name) == ("trail", 1, "car")
