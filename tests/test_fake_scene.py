"""Fake camera: determinism, protocol, scenario scripting and validation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edged.core.types import ExposureMode
from edged.hal.base import Camera, CameraError
from edged_sim.camera import FakeCamera
from edged_sim.scene import PATHS, Actor, Scenario, SceneEvent, generate_scenario

W, H = 320, 180


def run(cam: FakeCamera, frames: int, commands: dict[int, tuple[float, float] | None] | None = None):
    """Capture ``frames`` frames, applying exposure commands before the given frame indices
    (``None`` = auto). Returns the per-frame pixel digests and ground truths."""
    cam.start()
    digests, truths = [], []
    for k in range(frames):
        if commands and k in commands:
            cmd = commands[k]
            if cmd is None:
                cam.set_auto_exposure()
            else:
                cam.set_manual_exposure(*cmd)
        shot = cam.capture()
        digests.append(hashlib.sha256(shot.pixels.tobytes()).hexdigest())
        truths.append(shot.ground_truth)
    return digests, truths


def gt_key(gt):
    return (
        gt.object_ids.tolist(),
        gt.class_ids.tolist(),
        gt.boxes.tolist(),
        gt.parent_ids.tolist(),
        gt.visible.tolist(),
        gt.texts,
        gt.events,
    )


def test_same_seed_and_commands_give_identical_frames_and_truth():
    commands = {0: None, 12: (2000.0, 3.0), 30: None, 40: (5000.0, 1.5)}
    kw = dict(cars_per_minute=90, people_per_minute=60, t0=0.0)
    a = run(FakeCamera(W, H, seed=11, **kw), 60, commands)
    b = run(FakeCamera(W, H, seed=11, **kw), 60, commands)
    assert a[0] == b[0]
    assert [gt_key(g) for g in a[1]] == [gt_key(g) for g in b[1]]
    assert sum(len(g) for g in a[1]) > 20, "the scene should contain objects in these frames"


def test_different_seed_gives_different_frames():
    kw = dict(cars_per_minute=90, people_per_minute=60, t0=0.0)
    a, _ = run(FakeCamera(W, H, seed=1, **kw), 20)
    b, _ = run(FakeCamera(W, H, seed=2, **kw), 20)
    assert all(x != y for x, y in zip(a, b, strict=True))


def test_exposure_commands_change_pixels_but_not_truth():
    base = run(FakeCamera(W, H, seed=4, cars_per_minute=90, t0=0.0, events=False), 30, {0: (2000.0, 2.0)})
    other = run(FakeCamera(W, H, seed=4, cars_per_minute=90, t0=0.0, events=False), 30, {0: (2000.0, 4.0)})
    assert all(x != y for x, y in zip(base[0], other[0], strict=True))
    assert [gt_key(g) for g in base[1]] == [gt_key(g) for g in other[1]]


def test_is_a_camera_and_stamps_scene_time():
    cam = FakeCamera(W, H, fps=8.0, t0=1000.0)
    assert isinstance(cam, Camera)
    assert cam.gain_range == (1.0, 16.0) and cam.shutter_range_us == (30.0, 100_000.0)
    with pytest.raises(CameraError, match="before start"):
        cam.capture()
    cam.start()
    stamps = [cam.capture().timestamp for _ in range(5)]
    assert stamps == pytest.approx([1000.0 + k / 8.0 for k in range(5)])
    assert cam.frame_index == 5
    cam.stop()
    with pytest.raises(CameraError):
        cam.capture()


def test_t0_defaults_to_wall_clock_at_start():
    import time

    cam = FakeCamera(W, H)
    before = time.time()
    cam.start()
    shot = cam.capture()
    assert before <= shot.timestamp <= time.time()
    assert shot.pixels.shape == (H, W, 3) and shot.pixels.dtype == np.uint8


def test_scripted_single_car_crosses_with_its_plate():
    script = Scenario((Actor("car", 0, "lane3", 8.0, plate_text="AB12 CDE"),))
    cam = FakeCamera(640, 360, script=script, t0=0.0, noise=False)
    cam.start()
    xs, seen = [], 0
    for _ in range(40):
        gt = cam.capture().ground_truth
        assert gt.events == ()
        cars = gt.of_class("car")
        if len(cars):
            seen += 1
            assert cars.object_ids.tolist() == [script.actors[0].object_id]
            xs.append(float(cars.boxes[0, 2]))
            plates = gt.of_class("plate")
            if len(plates):
                assert plates.texts == ("AB12 CDE",)
                assert plates.parent_ids.tolist() == [script.actors[0].object_id]
    assert seen >= 5
    assert xs == sorted(xs), "a lane3 car moves left to right"
    assert len(gt) == 0, "after crossing the road is empty"


def test_seeded_scenario_is_consistent():
    sc = generate_scenario(5, duration_s=300.0, cars_per_minute=30, people_per_minute=20)
    assert sc.period_frames == 3000
    ids = [a.object_id for a in sc.actors] + [a.part_id for a in sc.actors]
    assert len(set(ids)) == len(ids) and 0 not in ids
    plates = [a.plate_text for a in sc.actors if a.kind != "person"]
    assert len(set(plates)) == len(plates)
    assert all(a.kind in PATHS[a.path].kinds for a in sc.actors)
    kinds = {a.kind for a in sc.actors}
    assert {"car", "person"} <= kinds
    assert [e.kind for e in sc.events[:3]] == ["light", "freeze", "cover"]
    for e in sc.events:
        assert 0 <= e.start_frame < e.end_frame <= sc.period_frames
    starts = sorted(sc.events, key=lambda e: e.start_frame)
    assert all(a.end_frame <= b.start_frame for a, b in zip(starts, starts[1:])), "events do not overlap"
    # changing the car rate leaves people and events alone (independent streams)
    other = generate_scenario(5, duration_s=300.0, cars_per_minute=10, people_per_minute=20)
    people = lambda s: [(a.spawn_frame, a.path, a.face) for a in s.actors if a.kind == "person"]  # noqa: E731
    assert people(other) == people(sc) and other.events == sc.events
    assert generate_scenario(5, duration_s=300.0, events=False).events == ()


def test_scenario_repeats_with_fresh_ids():
    cam = FakeCamera(W, H, seed=3, cars_per_minute=120, people_per_minute=60, duration_s=6.0, t0=0.0, events=False)
    period = cam.scenario.period_frames
    _, truths = run(cam, 2 * period)
    first = truths[:period]
    second = truths[period:]
    assert sum(len(g) for g in first) > 0
    stride = cam.scenario.id_stride
    for a, b in zip(first, second, strict=True):
        assert (b.object_ids == a.object_ids + stride).all()
        assert np.array_equal(b.boxes, a.boxes)


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        (Actor("car", 0, "lane9", 8.0), "actors[0].path: unknown path 'lane9'"),
        (Actor("truck", 0, "lane3", 8.0), "actors[0].kind: a 'truck' cannot use path 'lane3'"),
        (Actor("person", 0, "lane1", 1.4), "actors[0].kind: a 'person' cannot use path 'lane1'"),
        (Actor("car", 0, "lane1", -3.0), "actors[0].speed_mps: expected a positive number"),
        (Actor("person", 0, "mid_walk", 1.4, lateral=1.5), "actors[0].lateral"),
    ],
)
def test_bad_scenarios_are_refused_with_the_field_named(actor, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Scenario((actor,))


def test_bad_events_and_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match=r"events\[0\]: need 0 <= start_frame < end_frame"):
        Scenario((), (SceneEvent("cover", 10, 5),))
    with pytest.raises(ValueError, match="unique"):
        Scenario((Actor("car", 0, "lane1", 8.0, object_id=5), Actor("car", 40, "lane1", 8.0, object_id=5)))


def test_bad_camera_arguments_are_refused():
    with pytest.raises(ValueError, match="fps"):
        FakeCamera(W, H, fps=0.0)
    with pytest.raises(ValueError, match="size"):
        FakeCamera(8, 8)
    cam = FakeCamera(W, H)
    with pytest.raises(ValueError, match="shutter_us must be a positive number"):
        cam.set_manual_exposure(float("nan"), 1.0)
    with pytest.raises(ValueError, match="gain must be a positive number"):
        cam.set_manual_exposure(2000.0, 0.0)
    assert cam.read_exposure().mode is ExposureMode.AUTO


def test_runtime_does_not_need_scikit_image():
    """The face photos are committed assets; only tools/models/make_face_assets.py reads scikit-image."""
    import subprocess
    import sys

    code = (
        "import sys; from edged_sim.camera import FakeCamera; c = FakeCamera(160, 90, t0=0.0); c.start(); c.capture(); "
        "assert 'skimage' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_face_assets_are_small_and_documented():
    from pathlib import Path

    from edged_sim.sprites import FACES_DIR, load_faces

    assets = FACES_DIR.parent
    total = sum(p.stat().st_size for p in assets.rglob("*") if p.is_file())
    assert total < 1_000_000
    provenance = (assets / "PROVENANCE.md").read_text()
    faces = load_faces()
    assert len(faces) >= 2 and sum(f.frontal for f in faces) >= 2
    for png in sorted(Path(FACES_DIR).glob("*.png")):
        assert f"faces/{png.name}" in provenance
