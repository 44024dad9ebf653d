"""The shipped real-world models on real photographs and video frames (``tests/data/real``)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import DetectConfig, ModelConfig, default_models
from edged.core.classes import CLASS_NAMES
from edged.core.geometry import iou_matrix
from edged.stages.detect import decoders
from edged.stages.detect.detector import Detector, box_crop

REAL = Path(__file__).resolve().parent / "data" / "real"
LABELS = json.loads((REAL / "labels.json").read_text())


def truth(name: str, cls: str) -> np.ndarray:
    return np.array([b["box"] for b in LABELS[name] if b["cls"] == cls and not b.get("ignore")], np.float32).reshape(-1, 4)


def found(boxes: np.ndarray, dets, cls: str, min_score: float, iou: float = 0.5) -> np.ndarray:
    mine = dets.boxes[(dets.class_ids == CLASS_NAMES.index(cls)) & (dets.scores >= min_score)]
    if len(boxes) == 0 or len(mine) == 0:
        return np.zeros(len(boxes), bool)
    return iou_matrix(boxes, mine).max(axis=1) >= iou


CENTERNET = ModelConfig(name="centernet", file="models/coco_centernet_512x288_fp16.tflite", layout="centernet",
                        input_size=(512, 288), labels=["person", "bicycle", "car", "motorcycle", "bus", "truck"],
                        score_threshold=0.15, nms_iou=0.5)


@pytest.fixture(scope="module", params=["nanodet (default)", "centernet"])
def objects(request: pytest.FixtureRequest) -> Detector:
    default = next(m for m in default_models() if m.name == "objects")
    return Detector.from_config(DetectConfig(models=[default if request.param.startswith("nanodet") else CENTERNET]))


def test_centernet_finds_the_labelled_people_and_vehicles(objects: Detector) -> None:
    person = objects.detect(cv2.imread(str(REAL / "person.jpg")))
    assert found(truth("person.jpg", "person"), person, "person", 0.3).all()
    dog = objects.detect(cv2.imread(str(REAL / "dog.jpg")))
    assert found(truth("dog.jpg", "bicycle"), dog, "bicycle", 0.3, iou=0.4).all()
    # the pickup is labelled truck; COCO models call it car or truck
    pickup = truth("dog.jpg", "truck")
    assert (found(pickup, dog, "car", 0.3) | found(pickup, dog, "truck", 0.3)).all()
    street = objects.detect(cv2.imread(str(REAL / "vtest_0300.jpg")))
    assert found(truth("vtest_0300.jpg", "person"), street, "person", 0.2, iou=0.4).mean() >= 0.8


def test_centernet_fires_on_nothing_much_in_a_scene_without_people(objects: Detector) -> None:
    from skimage import data

    coffee = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    dets = objects.detect(coffee)
    assert int((dets.scores >= 0.3).sum()) == 0


def test_default_chain_covers_the_labelled_face_of_a_real_photo() -> None:
    det = Detector.from_config(DetectConfig())
    dets = det.detect(cv2.imread(str(REAL / "messi5.jpg")))
    assert found(truth("messi5.jpg", "face"), dets, "face", 0.3, iou=0.3).all()
    assert set(det.last_timings_ms) == {"objects", "face", "face_frame", "face_scan", "plate", "plate_text", "plate_scan"}


def test_centernet_decoder_on_synthetic_maps() -> None:
    heat = np.zeros((1, 9, 16, 3), np.float32)
    sides = np.zeros((1, 9, 16, 4), np.float32)
    heat[0, 4, 5, 2] = 0.9  # one peak of class 2 at cell (5, 4); its neighbours lower
    heat[0, 4, 6, 2] = 0.5
    sides[0, 4, 5] = (10, 20, 30, 40)
    raw = decoders.decode_centernet([sides, heat], (64, 36), 3, 0.3, 0.5)  # outputs in either order
    assert len(raw) == 1 and raw.labels.tolist() == [2]
    np.testing.assert_allclose(raw.boxes[0], [4 * 5 - 10, 4 * 4 - 20, 4 * 5 + 30, 4 * 4 + 40])
    assert raw.scores[0] == pytest.approx(0.9)
    assert len(decoders.decode_centernet([heat, sides], (64, 36), 3, 0.95, 0.5)) == 0
    with pytest.raises(ValueError, match="expected"):
        decoders.decode_centernet([heat, sides], (64, 36), 5, 0.3, 0.5)


def test_nanodet_decoder_on_synthetic_maps() -> None:
    cls8, box8 = np.zeros((1, 4, 8, 3), np.float32), np.full((1, 4, 8, 44), -20.0, np.float32)
    cls16, box16 = np.zeros((1, 2, 4, 3), np.float32), np.zeros((1, 2, 4, 44), np.float32)
    cls8[0, 1, 2, 1] = 0.8
    for side, bin_ in enumerate((1, 2, 3, 4)):  # all mass on one bin per side: distance = bin x stride
        box8[0, 1, 2, side * 11 + bin_] = 20.0
    raw = decoders.decode_nanodet([cls16, box16, box8, cls8], (64, 32), 3, 0.3, 0.5)  # any order
    assert len(raw) == 1 and raw.labels.tolist() == [1]
    cx, cy = (2 + 0.5) * 8, (1 + 0.5) * 8
    np.testing.assert_allclose(raw.boxes[0], [cx - 8, cy - 16, cx + 24, cy + 32], atol=1e-3)
    with pytest.raises(ValueError, match="nanodet level"):
        decoders.decode_nanodet([cls8, cls16], (64, 32), 3, 0.3, 0.5)


def test_box_crops_cover_the_grown_box_inside_the_frame() -> None:
    r = box_crop(100, 100, 300, 200, 1.1, 1280, 720)
    assert (r.x, r.y, r.w, r.h) == (90, 95, 220, 110)
    edge = box_crop(1200, 650, 1280, 720, 1.5, 1280, 720)
    assert edge.x + edge.w == 1280 and edge.y + edge.h == 720
    assert box_crop(10, 10, 14, 30, 1.1, 1280, 720) is None  # too narrow to search


def test_one_crop_per_object_found_under_two_classes() -> None:
    from edged.core.types import Detections
    from edged.stages.detect.detector import crop_regions

    det = Detector.from_config(DetectConfig())
    plate = next(m for m in det.models if m.cfg.name == "plate")
    van = [654, 50, 728, 104]
    seeds = Detections(np.array([van, [655, 51, 728, 104], [100, 100, 300, 200]], np.float32),
                       np.array([0.4, 0.35, 0.5], np.float32),
                       np.array([CLASS_NAMES.index(c) for c in ("car", "truck", "bus")], np.int16), np.zeros(3, np.float32))
    regions = crop_regions(seeds, plate, 768, 576)
    assert len(regions) == 2  # the van once (as car or truck), the bus once


@pytest.mark.parametrize("name", ["messi5.jpg", "vtest_0000.jpg", "vtest_0300.jpg"])
def test_one_box_per_face_when_several_face_models_find_it(name: str) -> None:
    """The head-crop, whole-frame and scan face models each find the same face; privacy must get one
    box for it (two overlapping boxes become two grown regions, a larger mask than the face needs)."""
    dets = Detector.from_config(DetectConfig()).detect(cv2.imread(str(REAL / name)))
    for cls in ("face", "plate"):
        boxes = dets.boxes[dets.class_ids == CLASS_NAMES.index(cls)]
        iou = iou_matrix(boxes, boxes) if len(boxes) else np.zeros((0, 0))
        np.fill_diagonal(iou, 0.0)
        assert not (iou >= 0.5).any(), f"{name}: overlapping {cls} boxes {boxes.tolist()}"
    labelled = truth(name, "face")
    assert found(labelled, dets, "face", 0.1, iou=0.3).mean() >= 0.5 or not len(labelled)
