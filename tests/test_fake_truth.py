"""Fake camera ground truth: boxes match what is drawn, parents, stable ids, sizes, a real detector."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from edged.core.classes import CLASS_NAMES
from edged_sim.camera import FakeCamera, blur_length
from edged_sim.scene import Actor, Scenario, actor_extent_px, actor_speed_px

FACE, PLATE, PERSON = (CLASS_NAMES.index(n) for n in ("face", "plate", "person"))
VEHICLES = {CLASS_NAMES.index(n) for n in ("car", "truck", "bus")}


def dense_camera(width=640, height=360, **kw) -> FakeCamera:
    kw = {"seed": 3, "cars_per_minute": 150, "people_per_minute": 90, "t0": 0.0, "noise": False, **kw}
    return FakeCamera(width, height, **kw)


def boxes_from_labels(labels: np.ndarray, gt) -> dict[int, tuple[int, int, int, int]]:
    """Bounding box of every object's pixels in a label map; a parent's pixels include its part's."""
    parts = {o: p for o, p in zip(gt.object_ids.tolist(), gt.parent_ids.tolist(), strict=True) if p >= 0}
    merged = labels.copy()
    for part, parent in parts.items():
        merged[labels == part] = parent

    def boxes(lab: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
        return {
            i: (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
            for i, sl in enumerate(ndimage.find_objects(lab), start=1)
            if sl is not None
        }

    own, whole = boxes(labels), boxes(merged)
    return {oid: own[oid] if oid in parts else whole[oid] for oid in gt.object_ids.tolist()}


@pytest.mark.slow
def test_truth_boxes_are_the_drawn_pixels_of_each_object():
    cam = dense_camera()
    cam.start()
    checked = occluded = clipped = 0
    for k in range(200):
        if k == 100:
            cam.set_manual_exposure(30_000.0, 1.0)  # long shutter: motion-blurred sprites
        shot = cam.capture()
        gt = shot.ground_truth
        labels = cam.label_map()
        if "freeze" in gt.events:
            continue
        assert set(np.unique(labels).tolist()) - {0} == set(gt.object_ids.tolist())
        drawn = boxes_from_labels(labels, gt)
        for oid, box, vis in zip(gt.object_ids.tolist(), gt.boxes.tolist(), gt.visible.tolist(), strict=True):
            assert box == pytest.approx(drawn[oid], abs=1), (k, oid)
            assert 0.0 < vis <= 1.0
            touches = box[0] <= 0 or box[1] <= 0 or box[2] >= cam.width or box[3] >= cam.height
            clipped += vis < 1 and touches
            occluded += vis < 1 and not touches
            checked += 1
    assert checked > 500
    assert occluded > 5 and clipped > 5, "the dense scene should exercise occlusion and clipping"


@pytest.mark.parametrize("shutter_us", [2000.0, 30_000.0])
def test_label_map_covers_exactly_the_changed_pixels(shutter_us):
    """Compare with the same camera rendering an empty road: pixels that differ lie on labelled
    pixels or within the anti-aliased / motion-blurred fringe next to them (fringes of objects cut
    by the image border are skipped), and labelled pixels do differ."""
    busy = dense_camera(events=False)
    empty = FakeCamera(640, 360, seed=3, t0=0.0, noise=False, script=Scenario())
    for cam in (busy, empty):
        cam.start()
        cam.set_manual_exposure(shutter_us, 1.0)
    fastest = max(actor_speed_px(a, 360) for a in busy.scenario.actors)
    reach = 2 + blur_length(fastest * shutter_us * 1e-6) // 2
    inner = np.zeros((360, 640), bool)
    inner[reach:-reach, reach:-reach] = True
    for _ in range(60):
        a, b = busy.capture(), empty.capture()
        labels = busy.label_map()
        changed = np.any(a.pixels != b.pixels, axis=2)
        near_object = ndimage.binary_dilation(labels > 0, iterations=reach)
        assert not np.any(changed & ~near_object & inner)
        if (labels > 0).sum() > 1000:
            assert changed[labels > 0].mean() > 0.8
    if shutter_us > 2000.0:
        assert reach > 5, "the long shutter must actually blur"


def test_parts_belong_to_their_parents_and_ids_are_stable():
    cam = dense_camera(events=False)
    cam.start()
    cam.set_manual_exposure(2000.0, 2.0)
    first_class: dict[int, int] = {}
    text_of: dict[int, str] = {}
    last_x: dict[int, float] = {}
    direction: dict[int, float] = {}
    for _ in range(150):
        gt = cam.capture().ground_truth
        rows = {oid: i for i, oid in enumerate(gt.object_ids.tolist())}
        assert len(rows) == len(gt), "ids are unique within a frame"
        for i, (oid, cls, parent) in enumerate(zip(gt.object_ids.tolist(), gt.class_ids.tolist(), gt.parent_ids.tolist(), strict=True)):
            assert first_class.setdefault(oid, cls) == cls, "an id keeps its class"
            rigid = cls in VEHICLES or cls == FACE  # a person's outline changes with the gait
            if rigid and gt.visible[i] == 1.0:
                # whole, unoccluded objects advance in one direction: an id follows one object
                x = float(gt.boxes[i, 0])
                if oid in last_x and x != last_x[oid]:
                    step = np.sign(x - last_x[oid])
                    assert direction.setdefault(oid, step) == step
                last_x[oid] = x
            if cls in (FACE, PLATE):
                assert parent in rows, "a visible part's parent is visible too"
                p = rows[parent]
                expected = PERSON if cls == FACE else VEHICLES
                assert gt.class_ids[p] == expected if cls == FACE else gt.class_ids[p] in expected
                inner, outer = gt.boxes[i], gt.boxes[p]
                assert (inner[:2] >= outer[:2]).all() and (inner[2:] <= outer[2:]).all()
                if cls == PLATE:
                    assert text_of.setdefault(oid, gt.texts[i]) == gt.texts[i]
                    assert len(gt.texts[i]) == 8 and gt.texts[i][4] == " "
            else:
                assert parent == -1 and gt.texts[i] == ""
    assert len(text_of) >= 5 and len(direction) >= 10


def place(actor: Actor, x_frac: float, frame: int, width: int = 1280, height: int = 720, fps: float = 10.0) -> Actor:
    """The actor with a spawn frame that puts its left edge at ``x_frac`` of the width at ``frame``."""
    w, _ = actor_extent_px(actor, height)
    step = actor_speed_px(actor, height) / fps
    travel = x_frac * width + w if actor.moving_direction > 0 else width - x_frac * width
    return dataclasses.replace(actor, spawn_frame=round(frame - travel / step))


def one_frame(actors: list[Actor], frame: int = 20):
    cam = FakeCamera(1280, 720, script=Scenario(tuple(actors)), t0=0.0, events=False)
    cam.start()
    cam.set_manual_exposure(2000.0, 2.3)
    for _ in range(frame + 1):
        shot = cam.capture()
    return shot


def test_plates_and_faces_are_big_enough_for_detectors_near_the_camera():
    actors = [
        place(Actor("car", 0, "lane3", 8.0, plate_text="AB12 CDE", size=0.93), 0.0, 20),
        place(Actor("car", 0, "lane2", 8.0, plate_text="XY34 KLM", size=0.93), 0.62, 20),
        place(Actor("person", 0, "mid_walk", 1.4, direction=1, lateral=0.0, size=0.9), 0.45, 20),
        place(Actor("person", 0, "near_walk", 1.4, direction=-1, lateral=1.0, size=1.08), 0.75, 20),
        place(Actor("car", 0, "lane0", 8.0, plate_text="FA12 RRR"), 0.05, 20),
    ]
    gt = one_frame(actors).ground_truth
    assert (gt.visible == 1.0).sum() >= 7, "the layout keeps plates and faces in view"
    widths = {t: b[2] - b[0] for t, b in zip(gt.texts, gt.boxes.tolist(), strict=True) if t}
    assert 70 <= widths["AB12 CDE"] <= 160 and 60 <= widths["XY34 KLM"] <= 160
    assert widths["FA12 RRR"] < widths["XY34 KLM"], "far-lane plates are smaller"
    heights = sorted(b[3] - b[1] for b in gt.of_class("face").boxes.tolist())
    assert len(heights) == 2 and 50 <= heights[0] and heights[1] <= 140


@pytest.mark.parametrize("face", [0, 1])
def test_a_real_face_detector_finds_the_frontal_faces(face):
    """scikit-image's LBP frontal-face cascade (a real, independent detector) fires on the
    rendered face where the ground truth says it is."""
    from skimage import data
    from skimage.feature import Cascade

    person = place(Actor("person", 0, "mid_walk", 1.4, direction=1, face=face), 0.4, 20)
    shot = one_frame([person])
    fx1, fy1, fx2, fy2 = shot.ground_truth.of_class("face").boxes[0].astype(int).tolist()
    pad = fx2 - fx1
    ox, oy = max(0, fx1 - pad), max(0, fy1 - pad)
    crop = shot.pixels[oy : fy2 + pad, ox : fx2 + pad, ::-1]
    found = Cascade(data.lbp_frontal_face_cascade_filename()).detect_multi_scale(
        img=np.ascontiguousarray(crop), scale_factor=1.1, step_ratio=1, min_size=(20, 20), max_size=(200, 200),
        min_neighbor_number=2,
    )

    def iou(d):
        x1, y1 = d["c"] + ox, d["r"] + oy
        x2, y2 = x1 + d["width"], y1 + d["height"]
        inter = max(0, min(x2, fx2) - max(x1, fx1)) * max(0, min(y2, fy2) - max(y1, fy1))
        return inter / ((x2 - x1) * (y2 - y1) + (fx2 - fx1) * (fy2 - fy1) - inter)

    assert found and max(iou(d) for d in found) > 0.4
