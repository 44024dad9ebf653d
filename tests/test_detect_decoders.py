"""Decoders on real TFLite files of each layout (tests/data, made by tools/models/make_test_models.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edged.config import DetectConfig, ModelConfig
from edged.core.classes import CLASS_NAMES
from edged.stages.detect import Detector
from edged.stages.detect.decoders import BLAZEFACE_ANCHORS, blazeface_anchors, nms
from tools.models.make_test_models import BLAZE_ANCHOR, BLAZE_REG, EXPECTED, YOLO_BOXES

DATA = Path(__file__).parent / "data"
CAR, PLATE = CLASS_NAMES.index("car"), CLASS_NAMES.index("plate")


def detector(file: str, layout: str, size: int, labels: list[str], **kw) -> Detector:
    cfg = ModelConfig(name="m", file=str(DATA / file), layout=layout, input_size=(size, size), labels=labels,
                      score_threshold=kw.pop("score_threshold", 0.3), **kw)
    return Detector.from_config(DetectConfig(models=[cfg]))


def white(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), 255, np.uint8)


def xyxy(cxcywh) -> np.ndarray:
    b = np.asarray(cxcywh, np.float32)
    return np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)


def by_score(d):
    order = np.argsort(-d.scores)
    return d.boxes[order], d.scores[order], d.class_ids[order]


@pytest.mark.parametrize(("file", "layout", "tol"), [
    ("tiny_yolov5_float.tflite", "yolov5", 1e-4),
    ("tiny_yolov5_uint8.tflite", "yolov5", 0.1),
    ("tiny_yolov8_int8.tflite", "yolov8", 0.2),
])
def test_yolo_heads_decode_known_boxes_with_nms(file, layout, tol):
    # frame 64x64 -> model 32x32: boxes come back doubled; candidate 2 overlaps candidate 0 and is suppressed
    det = detector(file, layout, 32, ["car", "plate"])
    boxes, scores, classes = by_score(det.detect(white(64, 64)))
    exp = EXPECTED["yolo"]
    assert len(boxes) == 2
    np.testing.assert_allclose(boxes, xyxy(exp["boxes_cxcywh"]) * 2, atol=tol * 2 + 1e-3)
    np.testing.assert_allclose(scores, exp["scores"], atol=max(tol, 0.02))  # uint8: obj x cls, both quantised
    assert classes.tolist() == [[CAR, PLATE][k] for k in exp["labels"]]


@pytest.mark.parametrize(("file", "layout"), [
    ("tiny_yolov5_uint8.tflite", "yolov5"), ("tiny_yolov8_int8.tflite", "yolov8"), ("tiny_ssd_float.tflite", "ssd"),
    ("tiny_blazeface_int8.tflite", "blazeface"), ("tiny_blazeface_float.tflite", "blazeface"),
])
def test_black_frame_gives_no_detections(file, layout):
    size = 128 if layout == "blazeface" else 32
    labels = ["face"] if layout == "blazeface" else ["car", "plate"]
    det = detector(file, layout, size, labels)
    assert len(det.detect(np.zeros((size, size, 3), np.uint8))) == 0


def test_letterbox_maps_boxes_back_to_the_frame():
    # a 64x32 frame is letterboxed into 32x32 at scale 0.5 with 8 px of padding above and below
    # (grey 114, so the tiny model's scores drop to about 0.2 x their white-frame values)
    det = detector("tiny_yolov5_float.tflite", "yolov5", 32, ["car", "plate"], score_threshold=0.1)
    boxes, _, _ = by_score(det.detect(white(32, 64)))
    model_boxes = xyxy(YOLO_BOXES[:2])
    expected = (model_boxes - np.array([0, 8, 0, 8], np.float32)) / 0.5
    expected[:, [1, 3]] = np.clip(expected[:, [1, 3]], 0, 32)
    np.testing.assert_allclose(boxes, expected, atol=1e-3)


def test_ssd_postprocess_outputs_decode():
    det = detector("tiny_ssd_float.tflite", "ssd", 32, ["car", "plate"])
    boxes, scores, classes = by_score(det.detect(white(100, 100)))
    exp = EXPECTED["ssd"]
    want = np.array([[x1, y1, x2, y2] for y1, x1, y2, x2 in exp["boxes_yxyx"]], np.float32) * 100
    np.testing.assert_allclose(boxes, want, atol=0.05)
    np.testing.assert_allclose(scores, exp["scores"], atol=1e-5)
    assert classes.tolist() == [[CAR, PLATE][k] for k in exp["labels"]]


@pytest.mark.parametrize(("file", "tol"), [("tiny_blazeface_float.tflite", 1e-3), ("tiny_blazeface_int8.tflite", 0.6)])
def test_blazeface_decodes_against_its_anchor(file, tol):
    det = detector(file, "blazeface", 128, ["face"], score_threshold=0.5)
    found = det.detect(white(256, 256))
    assert len(found) == 1 and found.class_ids[0] == CLASS_NAMES.index("face")
    ax, ay = blazeface_anchors(BLAZEFACE_ANCHORS["short_range"])[BLAZE_ANCHOR] * 128
    dx, dy, w, h = BLAZE_REG
    want = np.array([ax + dx - w / 2, ay + dy - h / 2, ax + dx + w / 2, ay + dy + h / 2]) * 2
    np.testing.assert_allclose(found.boxes[0], want, atol=tol * 2)
    assert found.scores[0] == pytest.approx(1 / (1 + np.exp(-5.0)), abs=0.01)


def test_blazeface_anchor_sets_have_mediapipe_sizes():
    assert len(blazeface_anchors(BLAZEFACE_ANCHORS["short_range"])) == 896
    assert len(blazeface_anchors(BLAZEFACE_ANCHORS["full_range"])) == 2304
    assert len(blazeface_anchors(BLAZEFACE_ANCHORS["back"])) == 896
    a = blazeface_anchors(BLAZEFACE_ANCHORS["short_range"])
    # first layer: 16x16 cells, two anchors per cell, row-major from the top left
    np.testing.assert_allclose(a[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    assert a[512].tolist() == pytest.approx([1 / 16, 1 / 16])


def test_per_class_thresholds():
    # white frame: car scores 0.8, plate 0.9 (candidate 2, plate 0.6, suppressed by NMS)
    det = detector("tiny_yolov5_float.tflite", "yolov5", 32, ["car", "plate"], thresholds={"car": 0.85})
    assert det.detect(white(32, 32)).class_ids.tolist() == [PLATE]
    det = detector("tiny_yolov5_float.tflite", "yolov5", 32, ["car", "plate"], thresholds={"plate": 0.95})
    assert det.detect(white(32, 32)).class_ids.tolist() == [CAR]
    # an empty label drops that output class entirely
    det = detector("tiny_yolov5_float.tflite", "yolov5", 32, ["", "plate"])
    assert det.detect(white(32, 32)).class_ids.tolist() == [PLATE]


def test_nms_is_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert sorted(nms(boxes, scores, np.array([0, 0, 1]), 0.5).tolist()) == [0, 2]
    assert nms(boxes, scores, np.array([0, 0, 0]), 0.5).tolist() == [0]


def test_yolo_grid_decodes_each_level_with_its_stride():
    from tools.models.make_test_models import GRID_CELLS

    det = detector("tiny_yolo_grid_int8.tflite", "yolo_grid", 32, ["car", "plate"])
    boxes, scores, classes = by_score(det.detect(white(64, 64)))
    want = []
    for level, gx, gy, cls, logit, w, h in GRID_CELLS:
        stride = 8 * 2**level
        cx, cy = (gx + 0.5) * stride, (gy + 0.5) * stride
        want.append(([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1 / (1 + np.exp(-logit)), [CAR, PLATE][cls]))
    want.sort(key=lambda x: -x[1])
    assert len(boxes) == 2
    np.testing.assert_allclose(boxes, np.array([b for b, _, _ in want]) * 2, atol=0.6)  # int8 sizes, frame at 2x
    np.testing.assert_allclose(scores, [s for _, s, _ in want], atol=0.01)
    assert classes.tolist() == [c for _, _, c in want]


def test_yolo_grid_shape_mismatch_is_refused():
    from edged.stages.detect import ModelError

    with pytest.raises(ModelError, match=r"yolo_grid level \(4, 4\) has outputs \[\(4, 4, 6\)\]; expected \(H, W, 7\)"):
        detector("tiny_yolo_grid_int8.tflite", "yolo_grid", 32, ["car", "plate", "person"])
