"""HyperLPR's plate SSD (``models/plate_hyperlpr_ssd_448x256_int8.tflite``): loads through the
Detector as an ``ssd`` model, finds real plates in vehicle crops; its anchors and Caffe parsing."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import DetectConfig, ModelConfig, default_models
from edged.core.classes import CLASS_NAMES
from edged.stages.detect import decoders
from edged.stages.detect.detector import Detector
from tools.models import build_plate_ssd as B
from tools.models import plate_data

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "plate_hyperlpr_ssd_448x256_int8.tflite"


def plate_config(**over: object) -> ModelConfig:
    """The recommended ``plate`` model: the SSD inside each vehicle box."""
    cfg = dict(name="plate", file=str(MODEL), layout="ssd", input_size=(448, 256), labels=["plate"],
               score_threshold=0.15, nms_iou=0.45, input_range=(0.0, 255.0),
               crops_from=["car", "truck", "bus", "motorcycle"], crop_shape="box", crop_grow=1.1,
               max_crop_fraction=0.6, full_frame=False)
    cfg.update(over)
    return ModelConfig(**cfg)


def _alpr() -> np.ndarray:
    path = plate_data.cache_path() / "alpr_test.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is not cached (python -m tools.models.plate_data fetches it)")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return B.iou_matrix(a.reshape(-1, 4).astype(np.float32), b.reshape(-1, 4).astype(np.float32))


def test_model_loads_as_ssd_with_post_processing_outputs():
    det = Detector.from_config(DetectConfig(models=[plate_config(crops_from=[], full_frame=True)]))
    m = det.models[0]
    assert m.model.input_size == (448, 256) and m.model.quantized
    assert sorted(len(o.shape) for o in m.model.outputs) == [1, 2, 2, 3]
    assert len(det.detect(np.zeros((256, 448, 3), np.uint8))) == 0


@pytest.mark.parametrize(("scale", "must_find"), [(1.0, [0, 1]), (0.35, [1])])
def test_finds_real_plates_of_alpr_test_in_vehicle_crops(scale: float, must_find: list[int]):
    img = _alpr()
    if scale != 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    objects = [m for m in default_models() if m.name == "objects"]
    det = Detector.from_config(DetectConfig(models=[*objects, plate_config()], threads=1))
    d = det.detect(img)
    plates = d.boxes[d.class_ids == CLASS_NAMES.index("plate")]
    truth = plate_data._real_plate_boxes("alpr_test.jpg") * scale
    assert len(plates), "no plate found"
    assert (_iou(truth[must_find], plates).max(axis=1) >= 0.3).all(), (truth, plates)
    assert (_iou(plates, truth).max(axis=1) >= 0.3).all(), "a plate box away from both plates"


def test_whole_image_finds_a_plate_at_the_size_it_was_trained_for():
    img = _alpr()
    truth = plate_data._real_plate_boxes("alpr_test.jpg")[1]  # MLB 803, 127 px wide
    x1, y1 = int(truth[0]) - 200, int(truth[1]) - 120
    crop = np.ascontiguousarray(img[y1 : y1 + 256, x1 : x1 + 448])
    det = Detector.from_config(DetectConfig(models=[plate_config(crops_from=[], full_frame=True, score_threshold=0.5)]))
    d = det.detect(crop)
    assert (_iou(truth - [x1, y1, x1, y1], d.boxes).max() >= 0.5)


def test_ssd_output_order_follows_the_post_processing_op_names():
    names = ["PartitionedCall:1", "PartitionedCall:3", "PartitionedCall:0", "PartitionedCall:2"]
    shapes = [(1, 20), (1,), (1, 20, 4), (1, 20)]
    order = decoders.ssd_output_order(names, shapes)
    assert order == [2, 0, 3, 1]
    boxes = np.zeros((1, 20, 4), np.float32)
    boxes[0, 0] = [0.5, 0.25, 0.75, 0.5]  # ymin, xmin, ymax, xmax
    scores = np.zeros((1, 20), np.float32)
    scores[0, :2] = [0.9, 0.1]
    outs = [np.zeros((1, 20), np.float32), np.array([2.0], np.float32), boxes, scores]
    raw = decoders.decode_ssd(outs, (448, 256), 0.15, order)
    assert len(raw) == 1 and raw.labels[0] == 0
    np.testing.assert_allclose(raw.boxes[0], [112, 128, 224, 192])


def test_prior_boxes_follow_caffe_order_and_pixel_sizes():
    param = {"min_size": 51.2, "max_size": 102.4, "aspect_ratio": [1.0, 2.0], "flip": "false", "offset": 0.5}
    a = B.prior_boxes(param, (2, 3), (96, 64))
    assert a.shape == (2 * 3 * 3, 4)
    cy, cx, h, w = a[:3].T  # first cell: min size, sqrt(min max), aspect 2
    np.testing.assert_allclose(cx, 16 / 96)
    np.testing.assert_allclose(cy, 16 / 64)
    np.testing.assert_allclose(w * 96, [51.2, np.sqrt(51.2 * 102.4), 51.2 * np.sqrt(2)], rtol=1e-5)
    np.testing.assert_allclose(h * 64, [51.2, np.sqrt(51.2 * 102.4), 51.2 / np.sqrt(2)], rtol=1e-5)
    np.testing.assert_allclose(a[3, :2], [16 / 64, 48 / 96])  # next cell along x


def _field(num: int, payload: bytes) -> bytes:
    return bytes([num << 3 | 2]) + bytes([len(payload)]) + payload if num < 16 else \
        bytes([(num << 3 | 2) & 0x7F | 0x80, (num << 3 | 2) >> 7]) + bytes([len(payload)]) + payload


def test_caffe_parsers_read_text_layers_and_wire_blobs():
    layers = B.parse_prototxt('layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
                              '  convolution_param { num_output: 2 pad: 1 kernel_size: 3 } }\n'
                              'layer { name: "p" type: "PriorBox" prior_box_param { aspect_ratio: 2.0 flip: false } }')
    assert layers[0]["bottom"] == ["data"] and layers[0]["convolution_param"]["kernel_size"] == 3
    assert layers[1]["prior_box_param"] == {"aspect_ratio": [2.0], "flip": "false"}
    shape = _field(7, _field(1, bytes([2, 3])))  # BlobShape dims packed: 2, 3
    data = _field(5, struct.pack("<6f", *range(6)))
    layer = _field(1, b"c") + _field(7, shape + data)
    blobs = B.parse_caffemodel(_field(100, layer))
    np.testing.assert_array_equal(blobs["c"][0], np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("scale", [0.35, 0.45])
def test_plate_scan_finds_small_plates_no_vehicle_box_leads_to(scale: float):
    """In a 1280x720 frame, the ``plate_scan`` windows find plates 32-57 px wide with no object
    model before them; the same SSD on the whole frame at the same threshold finds none of them."""
    small = cv2.resize(_alpr(), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    img = np.full((720, 1280, 3), 128, np.uint8)
    x0, y0 = 500, 200
    img[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    truth = plate_data._real_plate_boxes("alpr_test.jpg") * scale + [x0, y0, x0, y0]
    scan = next(m for m in default_models() if m.name == "plate_scan")
    plates = Detector.from_config(DetectConfig(models=[scan], threads=1)).detect(img).boxes
    assert len(plates) and (_iou(truth, plates).max(axis=1) >= 0.3).all(), (truth, plates)
    whole = Detector.from_config(DetectConfig(models=[plate_config(
        crops_from=[], full_frame=True, score_threshold=scan.score_threshold)], threads=1)).detect(img).boxes
    assert not len(whole) or not (_iou(truth, whole).max(axis=1) >= 0.3).any(), whole
