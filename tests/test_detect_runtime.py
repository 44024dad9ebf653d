"""TFLite runtime: quantisation arithmetic and clear errors for bad model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edged.config import DetectConfig, ModelConfig
from edged.stages.detect import Detector, ModelError, TFLiteModel
from edged.stages.detect.runtime import dequantize, quantize

DATA = Path(__file__).parent / "data"


def test_quantize_rounds_and_saturates_int8_and_uint8():
    x = np.array([-2.0, -1.0, -0.004, 0.0, 0.42, 0.75, 3.0], np.float32)
    q = quantize(x, 1 / 127.5, -1, np.dtype(np.int8))
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -128, -2, -1, 53, 95, 127]
    u = quantize(x, 1 / 255, 0, np.dtype(np.uint8))
    assert u.dtype == np.uint8
    assert u.tolist() == [0, 0, 0, 0, 107, 191, 255]


def test_dequantize_inverts_quantize_within_half_a_step():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.95, 0.95, 1000).astype(np.float32)  # inside the representable range
    scale, zero = 2 / 255, -3
    back = dequantize(quantize(x, scale, zero, np.dtype(np.int8)), scale, zero)
    assert np.abs(back - x).max() <= scale / 2 + 1e-6


@pytest.mark.parametrize("name", ["tiny_yolov5_uint8", "tiny_yolov8_int8", "tiny_blazeface_int8"])
def test_quantised_models_take_float_and_return_float(name):
    model = TFLiteModel(DATA / f"{name}.tflite")
    assert model.quantized
    assert model.inputs[0].dtype in (np.dtype(np.int8), np.dtype(np.uint8))
    w, h = model.input_size
    lo = -1.0 if "blaze" in name else 0.0
    white = model.run(np.full((h, w, 3), 1.0, np.float32))
    black = model.run(np.full((h, w, 3), lo, np.float32))
    assert all(o.dtype == np.float32 for o in white)
    # scores grow with the mean pixel in every tiny model: white and black must differ by a lot
    assert max(float(np.abs(a - b).max()) for a, b in zip(white, black, strict=True)) > 0.5


def test_float_and_int8_tiny_blazeface_agree_after_dequantisation():
    x = np.ones((128, 128, 3), np.float32)
    ref = TFLiteModel(DATA / "tiny_blazeface_float.tflite").run(x)
    got = TFLiteModel(DATA / "tiny_blazeface_int8.tflite").run(x)
    ref = sorted(ref, key=lambda o: o.shape[-1])
    got = sorted(got, key=lambda o: o.shape[-1])
    for r, g, out in zip(ref, got, sorted(TFLiteModel(DATA / "tiny_blazeface_int8.tflite").outputs, key=lambda o: o.shape[-1]), strict=True):
        assert np.abs(r - g).max() <= out.scale  # within one quantisation step


def _cfg(file: Path, **kw) -> DetectConfig:
    fields = dict(name="m", file=str(file), layout="yolov5", input_size=(32, 32), labels=["car", "plate"])
    fields.update(kw)
    return DetectConfig(models=[ModelConfig(**fields)])


def test_missing_model_names_the_file(tmp_path):
    path = tmp_path / "nope.tflite"
    with pytest.raises(ModelError, match="nope.tflite") as err:
        Detector.from_config(_cfg(path))
    assert "not found" in str(err.value)


def test_corrupt_model_names_the_file(tmp_path):
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="broken.tflite") as err:
        Detector.from_config(_cfg(path))
    assert "not a valid TFLite model" in str(err.value)


def test_truncated_model_names_the_file(tmp_path):
    path = tmp_path / "cut.tflite"
    path.write_bytes((DATA / "tiny_yolov5_float.tflite").read_bytes()[:300])
    with pytest.raises(ModelError, match="cut.tflite"):
        Detector.from_config(_cfg(path))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"input_size": (64, 32)}, r"input_size \(64, 32\).*\(32, 32\)"),
        ({"layout": "ssd"}, "needs 4 output tensors, the file has 1"),
        ({"layout": "blazeface"}, "needs 2 output tensors"),
        ({"labels": ["car"]}, r"does not end in 5 \+ 1 labels"),
        ({"labels": ["car", "spaceship"]}, "'spaceship' is not an edged class"),
        ({"thresholds": {"face": 0.3}}, "threshold for 'face'"),
    ],
)
def test_mismatched_config_names_file_and_mismatch(kw, message):
    path = DATA / "tiny_yolov5_float.tflite"
    with pytest.raises(ModelError, match=message) as err:
        Detector.from_config(_cfg(path, **kw))
    assert "tiny_yolov5_float.tflite" in str(err.value)


def test_yolov8_config_on_ssd_file_is_a_mismatch():
    with pytest.raises(ModelError, match="tiny_ssd_float.tflite.*needs 1 output tensors, the file has 4"):
        Detector.from_config(_cfg(DATA / "tiny_ssd_float.tflite", layout="yolov8"))


def test_blazeface_with_unknown_anchor_count_is_refused():
    from edged.stages.detect.decoders import blazeface_variant

    assert blazeface_variant(128, 896).strides == (8, 16, 16, 16)
    with pytest.raises(ValueError, match="no BlazeFace anchor set for input 128 px with 900 anchors"):
        blazeface_variant(128, 900)


@pytest.mark.parametrize(("name", "rng_range"), [("tiny_yolov8_int8", (0.0, 1.0)), ("tiny_yolov5_uint8", (0.0, 1.0)),
                                                 ("tiny_blazeface_int8", (-1.0, 1.0)),
                                                 ("../../models/edged_det_int8", (0.0, 1.0))])
def test_run_pixels_matches_the_float_path(name, rng_range):
    model = TFLiteModel(DATA / f"{name}.tflite")
    w, h = model.input_size
    pixels = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    lo, hi = rng_range
    via_float = model.run(pixels.astype(np.float32) * ((hi - lo) / 255) + lo)
    direct = model.run_pixels(pixels, rng_range)
    for a, b in zip(via_float, direct, strict=True):
        np.testing.assert_array_equal(a, b)
