"""Fake camera events: freeze, cover and light, at the scheduled frames."""

from __future__ import annotations

import numpy as np

from edged_sim.camera import FakeCamera
from edged_sim.scene import Actor, Scenario, SceneEvent

W, H = 320, 180


def capture_all(cam: FakeCamera, frames: int):
    cam.start()
    return [cam.capture() for _ in range(frames)]


def test_ground_truth_events_follow_the_published_schedule():
    cam = FakeCamera(W, H, seed=9, t0=0.0)
    kinds = {e.kind for e in cam.scenario.events}
    assert kinds == {"light", "freeze", "cover"}
    last = max(e.end_frame for e in cam.scenario.events[:3])
    shots = capture_all(cam, last + 5)
    for k, shot in enumerate(shots):
        expected = tuple(sorted({e.kind for e in cam.scenario.events if e.start_frame <= k < e.end_frame}, key=["light", "freeze", "cover"].index))
        assert shot.ground_truth.events == expected, k
    assert FakeCamera(W, H, seed=9, events=False).scenario.events == ()


def test_freeze_repeats_the_previous_frame_exactly():
    cam = FakeCamera(W, H, seed=9, t0=0.0, cars_per_minute=120)
    freeze = next(e for e in cam.scenario.events if e.kind == "freeze")
    shots = capture_all(cam, freeze.end_frame + 3)
    before = shots[freeze.start_frame - 1]
    for k in range(freeze.start_frame, freeze.end_frame):
        shot = shots[k]
        assert np.array_equal(shot.pixels, before.pixels)
        assert shot.pixels is not before.pixels, "a fresh array: callers may write into it"
        assert shot.exposure == before.exposure
        assert np.array_equal(shot.ground_truth.boxes, before.ground_truth.boxes)
        assert shot.ground_truth.events == ("freeze",)
        assert shot.timestamp == k / cam.fps, "time keeps running while the picture is stuck"
    after = shots[freeze.end_frame]
    assert not np.array_equal(after.pixels, before.pixels)
    assert "freeze" not in after.ground_truth.events
    # in the frames before, consecutive frames differ (noise alone makes sure)
    assert not np.array_equal(shots[freeze.start_frame - 2].pixels, before.pixels)


def test_cover_gives_near_uniform_dark_frames_with_no_objects():
    script = Scenario(
        (Actor("car", 0, "lane2", 8.0, plate_text="CO12 VER"), Actor("person", 0, "mid_walk", 1.4)),
        (SceneEvent("cover", 5, 15),),
    )
    cam = FakeCamera(W, H, t0=0.0, script=script)
    shots = capture_all(cam, 20)
    cam2 = FakeCamera(W, H, t0=0.0, script=script)
    cam2.start()
    cam2.set_manual_exposure(2000.0, 2.0)
    locked = [cam2.capture() for _ in range(20)]
    for k in range(5, 15):
        for shot in (shots[k], locked[k]):
            pixels = shot.pixels.astype(float)
            assert pixels.mean() < 60 and pixels.std() < 6, (k, pixels.mean(), pixels.std())
            assert len(shot.ground_truth) == 0 and shot.ground_truth.events == ("cover",)
    assert locked[10].pixels.mean() < 10, "locked exposure: essentially black"
    assert shots[4].pixels.std() > 20 and len(shots[4].ground_truth) > 0
    assert len(shots[15].ground_truth) > 0, "objects kept moving behind the cover"


def test_light_event_dims_the_scene_and_recovers():
    script = Scenario((), (SceneEvent("light", 10, 60, level=0.4, ramp_frames=15),))
    cam = FakeCamera(W, H, t0=0.0, noise=False, script=script)
    assert [cam.illumination(k) for k in (0, 9, 10, 25, 35, 44, 59, 60)] == [1.0, 1.0, 1.0, 0.4, 0.4, 0.4, 1.0, 1.0]
    cam.start()
    cam.set_manual_exposure(2000.0, 2.0)
    means = [float(cam.capture().pixels.mean()) for _ in range(65)]
    assert means[35] < 0.75 * means[5]
    assert abs(means[62] - means[5]) < 0.5
    assert all(a >= b for a, b in zip(means[10:26], means[11:26], strict=False)), "dims smoothly"
