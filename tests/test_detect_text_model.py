"""The text detector as a plate model (``models/plate_text_ppocr3_256x256_int8.tflite``, layout ``db``):
the probability-map decoder, the file through the Detector, and its place among the default models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import DetectConfig, ModelConfig, default_models
from edged.core.classes import CLASS_NAMES
from edged.core.types import Detections
from edged.stages.detect.db import TEXT_PROBABILITY, UNCLIP, check_db_output, decode_db
from edged.stages.detect.detector import Detector, Region, carried_crop
from edged.stages.detect.runtime import ModelError

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "plate_text_ppocr3_256x256_int8.tflite"


def text_config(**over: object) -> ModelConfig:
    cfg = dict(name="plate_text", file=str(MODEL), layout="db", input_size=(256, 256), labels=["plate"],
               score_threshold=0.5, nms_iou=0.3)
    cfg.update(over)
    return ModelConfig(**cfg)


def two_line_plate(seed: int = 0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A grey, noisy 200x240 crop with a square two-line plate drawn on it, and the plate's box."""
    rng = np.random.default_rng(seed)
    img = np.full((240, 200, 3), (90, 100, 110), np.uint8) + rng.integers(0, 20, (240, 200, 3), dtype=np.uint8)
    box = (60, 120, 140, 180)
    cv2.rectangle(img, box[:2], box[2:], (235, 235, 235), -1)
    cv2.rectangle(img, box[:2], box[2:], (20, 20, 20), 2)
    cv2.putText(img, "59-C1", (68, 145), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (10, 10, 10), 2)
    cv2.putText(img, "234.56", (64, 172), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (10, 10, 10), 2)
    return img, box


def _map(h: int, w: int) -> np.ndarray:
    return np.zeros((1, h, w, 1), np.float32)


def test_each_group_of_text_pixels_is_one_box_scored_by_its_mean_and_grown_by_the_unclip_distance():
    prob = _map(64, 96)
    prob[0, 10:20, 10:50] = 0.9  # a text line 40 x 10
    prob[0, 40:46, 60:70] = 0.35  # weak: mean below the score
    raw = decode_db([prob], (96, 64), 0.5, 0.3)
    assert len(raw) == 1 and raw.labels.tolist() == [0]
    assert raw.scores[0] == pytest.approx(0.9)
    grow = UNCLIP * 40 * 10 / (2 * (40 + 10))
    np.testing.assert_allclose(raw.boxes[0], [10 - grow, 10 - grow, 50 + grow, 20 + grow], atol=1e-4)
    assert len(decode_db([prob], (96, 64), 0.3, 0.3)) == 2


def test_pixels_at_the_text_probability_or_thin_groups_make_no_box_and_boxes_stay_inside_the_input():
    prob = _map(32, 32)
    prob[0, 5:15, 5:15] = TEXT_PROBABILITY  # not above it
    prob[0, 20:30, 2:4] = 0.95  # 2 px wide: noise
    assert len(decode_db([prob], (32, 32), 0.0, 0.3)) == 0
    prob[0, 0:30, 0:30] = 0.95
    raw = decode_db([prob], (32, 32), 0.5, 0.3)
    assert len(raw) == 1 and raw.boxes.min() >= 0 and raw.boxes.max() <= 32


def test_the_output_must_be_one_map_at_the_input_size():
    check_db_output((1, 64, 96, 1), (96, 64))
    for bad in [(1, 32, 48, 1), (1, 64, 96, 2), (64, 96)]:
        with pytest.raises(ValueError, match="probability map"):
            check_db_output(bad, (96, 64))


def test_a_file_that_is_no_text_detector_is_refused_with_the_model_named():
    ssd = ROOT / "models" / "plate_hyperlpr_ssd_448x256_int8.tflite"
    with pytest.raises(ModelError, match="plate_text"):
        Detector.from_config(DetectConfig(models=[text_config(file=str(ssd), input_size=(448, 256))]))


def test_the_shipped_file_finds_both_lines_of_a_square_plate_and_nothing_on_a_blank_crop():
    det = Detector.from_config(DetectConfig(models=[text_config()], threads=1))
    assert det.models[0].model.quantized
    img, (x1, y1, x2, y2) = two_line_plate()
    found = det.detect(img)
    assert len(found) >= 1 and set(found.class_ids.tolist()) == {CLASS_NAMES.index("plate")}
    lo, hi = found.boxes[:, :2].min(axis=0), found.boxes[:, 2:].max(axis=0)
    # together the boxes cover the plate's characters and stay near it
    assert lo[0] <= x1 + 10 and lo[1] <= y1 + 10 and hi[0] >= x2 - 10 and hi[1] >= y2 - 10
    assert lo[0] >= x1 - 15 and lo[1] >= y1 - 15 and hi[0] <= x2 + 15 and hi[1] <= y2 + 15
    assert len(det.detect(np.full((240, 200, 3), 120, np.uint8))) == 0


def test_the_default_models_run_the_text_detector_inside_car_lorry_and_motorbike_boxes():
    m = next(m for m in default_models() if m.name == "plate_text")
    assert m.layout == "db" and Path(m.file).name == MODEL.name and not m.full_frame
    assert sorted(m.crops_from) == ["car", "motorcycle", "truck"] and m.crop_shape == "box"
    names = [x.name for x in default_models()]
    assert names.index("objects") < names.index("plate_text") and m.carry_crops == 2


def test_a_moved_crop_carries_its_last_result_with_it_and_runs_again_after_carry_crops_frames():
    """A vehicle's crop that moved (overlap >= half) takes the last result shifted with it, at most
    ``carry_crops`` frames in a row; a crop elsewhere (a newcomer) runs at once."""
    det = Detector.from_config(DetectConfig(models=[text_config(carry_crops=2, reuse_still_crops=0)], threads=1))
    text = det.models[0]
    calls: list[Region] = []
    run = text.detect_region
    text.detect_region = lambda bgr, region: calls.append(region) or run(bgr, region)  # type: ignore[method-assign]
    plate, (x1, y1, x2, y2) = two_line_plate()
    frame = np.zeros((480, 640, 3), np.uint8)

    def crops(at: Region) -> list[Detections]:
        img = frame.copy()
        img[at.y : at.y + at.h, at.x : at.x + at.w] = plate
        return text.detect_crops([at], det.change, lambda r: det.executor.submit(text.detect_crop, img, r))()

    first = crops(Region(100, 100, 200, 240))
    assert len(calls) == 1 and len(first[0]) >= 1
    for step in (1, 2):  # the vehicle moves 12 px a frame: carried, not run
        moved = crops(Region(100 + 12 * step, 100, 200, 240))
        assert len(calls) == 1
        np.testing.assert_allclose(moved[0].boxes, first[0].boxes + [12 * step, 0, 12 * step, 0], atol=1e-4)
        assert moved[0].boxes[:, 0].min() <= 100 + 12 * step + x1 + 10
    crops(Region(136, 100, 200, 240))  # carried twice in a row: runs again
    assert len(calls) == 2
    crops(Region(400, 200, 200, 240))  # no overlap with the last crop: a newcomer runs at once
    assert len(calls) == 3


def test_carried_crops_are_off_by_default_and_follow_the_best_overlapping_crop():
    assert ModelConfig(name="m", file="f", layout="db", input_size=(8, 8), labels=["plate"]).carry_crops == 0
    last = [(Region(0, 0, 100, 100), Detections(np.array([[10, 10, 20, 20]], np.float32), np.array([0.9], np.float32),
                                                 np.array([0], np.int16), np.zeros(1, np.float32)), 0)]
    carried = carried_crop(last, Region(0, 0, 150, 100), 3)
    assert carried is not None
    r, found, age = carried
    assert r == Region(0, 0, 150, 100) and age == 1
    np.testing.assert_allclose(found.boxes, [[15, 10, 30, 20]])  # 1.5x as wide: scaled with the crop
    assert carried_crop(last, Region(60, 0, 100, 100), 3) is None  # overlap 40/160: another object
    nearer = (Region(40, 0, 100, 100), Detections(np.array([[50, 10, 60, 20]], np.float32), np.array([0.8], np.float32),
                                                  np.array([0], np.int16), np.zeros(1, np.float32)), 0)
    found = carried_crop([*last, nearer], Region(45, 0, 100, 100), 3)
    assert found is not None and found[1].scores.tolist() == pytest.approx([0.8])  # the best overlap wins
    assert carried_crop([(*last[0][:2], 3)], Region(0, 0, 100, 100), 3) is None  # carried enough
