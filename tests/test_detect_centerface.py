"""CenterFace: the shipped int8 model on real photos, and the numpy decoder on synthetic maps."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.stages.detect.centerface import centerface_order, decode_centerface
from edged.stages.detect.detector import letterbox
from edged.stages.detect.runtime import TFLiteModel

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "face_centerface_640x384_int8.tflite"


def _photo(spec: str) -> np.ndarray:
    """A BGR photo shipped with scikit-image (``skimage:name``) or matplotlib (``mpl:file``)."""
    if spec.startswith("skimage:"):
        skdata = pytest.importorskip("skimage.data")
        path = next(Path(skdata.__file__).parent.glob(spec.split(":", 1)[1] + ".*"))
    else:
        mpl = pytest.importorskip("matplotlib")
        path = Path(mpl.get_data_path()) / "sample_data" / spec.split(":", 1)[1]
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def model() -> TFLiteModel:
    return TFLiteModel(MODEL, threads=2)


def _faces(model: TFLiteModel, bgr: np.ndarray, min_score: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Face boxes (in ``bgr`` pixels) and scores, as the detector would run the model."""
    rgb, sx, sy, px, py = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), model.input_size, 0)
    outs = model.run_pixels(rgb, (0.0, 255.0))
    order = centerface_order([o.name for o in model.outputs], [o.shape for o in model.outputs])
    raw = decode_centerface(outs, model.input_size, min_score, 0.3, order)
    boxes = (raw.boxes - np.array([px, py, px, py], np.float32)) / np.array([sx, sy, sx, sy], np.float32)
    return boxes, raw.scores


def test_shipped_model_outputs_are_named_and_in_onnx_order(model: TFLiteModel) -> None:
    assert model.quantized and model.input_size == (640, 384)
    assert (model.inputs[0].scale, model.inputs[0].zero_point) == (1.0, -128)  # pixels 0-255 go in as u - 128
    assert [o.name for o in model.outputs] == ["heatmap", "scale", "offset", "landmarks"]
    assert [o.shape for o in model.outputs] == [(1, 96, 160, c) for c in (1, 2, 2, 10)]
    shapes = [o.shape for o in model.outputs]
    assert centerface_order([o.name for o in model.outputs], shapes) == [0, 1, 2, 3]
    assert centerface_order(None, shapes) == [0, 1, 2, 3]  # the order fallback agrees with the names


@pytest.mark.parametrize("spec, truth", [
    ("skimage:astronaut", (181, 72, 271, 186)),
    ("mpl:grace_hopper.jpg", (165, 128, 372, 345)),
])
def test_int8_model_finds_the_face_in_a_real_portrait(model: TFLiteModel, spec: str, truth: tuple[int, ...]) -> None:
    boxes, scores = _faces(model, _photo(spec))
    assert len(scores) >= 1
    best = int(np.argmax([_iou(b, np.array(truth, np.float32)) for b in boxes]))
    assert _iou(boxes[best], np.array(truth, np.float32)) > 0.5, (boxes, scores)
    assert scores[best] >= 0.7
    assert len(scores) == 1, (boxes, scores)  # one face, one box


def test_int8_model_finds_no_face_in_a_face_free_photo(model: TFLiteModel) -> None:
    _, scores = _faces(model, _photo("skimage:coffee"), 0.5)
    assert len(scores) == 0, scores


def _maps(gh: int = 24, gw: int = 40) -> list[np.ndarray]:
    heat = np.full((1, gh, gw, 1), 0.01, np.float32)
    scale = np.zeros((1, gh, gw, 2), np.float32)
    offset = np.zeros((1, gh, gw, 2), np.float32)
    heat[0, 10, 20, 0] = 0.9
    heat[0, 10, 21, 0] = 0.6  # a weaker neighbour: not a 3x3 peak, must not give a second box
    scale[0, 10, 20] = [np.log(8.0), np.log(5.0)]  # h = 32 px, w = 20 px
    offset[0, 10, 20] = [0.1, 0.25]  # dy, dx in cells
    scale[0, 10, 21] = [np.log(1.0), np.log(1.0)]  # a 4 px box: would survive NMS if not peak-picked
    return [heat, scale, offset, np.zeros((1, gh, gw, 10), np.float32)]


def test_decoder_single_peak_gives_the_exact_box() -> None:
    raw = decode_centerface(_maps(), (160, 96), 0.5, 0.3)
    cx, cy = (20 + 0.25 + 0.5) * 4, (10 + 0.1 + 0.5) * 4
    np.testing.assert_allclose(raw.boxes, [[cx - 10, cy - 16, cx + 10, cy + 16]], atol=1e-4)
    np.testing.assert_allclose(raw.scores, [0.9], atol=1e-6)
    assert raw.labels.tolist() == [0]
    assert len(decode_centerface(_maps(), (160, 96), 0.95, 0.3)) == 0


def test_decoder_finds_maps_by_name_in_any_order_and_clips() -> None:
    maps = _maps()
    maps[1][0, 10, 20] = [np.log(30.0), np.log(30.0)]  # 120 px square: clipped to the 160x96 input
    perm = [3, 2, 0, 1]  # landmarks, offset, heatmap, scale
    names = ["landmarks", "offset", "heatmap", "scale"]
    shuffled = [maps[i] for i in perm]
    order = centerface_order(names, [m.shape for m in shuffled])
    assert order == [2, 3, 1, 0]
    raw = decode_centerface(shuffled, (160, 96), 0.5, 0.3, order)
    cx, cy = (20 + 0.25 + 0.5) * 4, (10 + 0.1 + 0.5) * 4
    np.testing.assert_allclose(raw.boxes, [[cx - 60, 0, 143.0, 96]], atol=1e-4)
    assert cy - 60 < 0  # the clip did something


def test_decoder_rejects_other_layouts() -> None:
    with pytest.raises(ValueError, match="1, 2, 2 and 10"):
        centerface_order(None, [(1, 8, 8, 1), (1, 8, 8, 2), (1, 8, 8, 4), (1, 8, 8, 10)])
