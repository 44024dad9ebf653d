"""Write tiny TFLite models of each output layout, with known outputs, for the decoder tests.

Each model computes ``m``, the mean input pixel mapped to 0-1 (so a white image gives 1, a black
one 0), and outputs ``A + B * m`` for constant tables ``A``, ``B`` chosen so that a white image
yields the detections listed in :data:`EXPECTED` and a black image yields none.

    python tools/models/make_test_models.py [--out tests/data]

Needs tensorflow (the ``models`` extra). The files are committed; rerun only to change them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = 32
"""Input side of the YOLO and SSD tiny models (pixels)."""
YOLO_BOXES = np.array([[8.0, 8.0, 8.0, 4.0], [20.0, 24.0, 10.0, 12.0], [9.0, 8.0, 8.0, 4.0]], np.float32)
"""cx, cy, w, h in input pixels of three candidates: 0 and 2 overlap (NMS keeps 0), 1 is apart."""
YOLO_CLASS = np.array([1, 0, 1])
YOLO_SCORE = np.array([0.9, 0.8, 0.6], np.float32)
NUM_CLASSES = 2
NUM_ANCHORS = 6
BLAZE_ANCHOR = 100
"""Index of the BlazeFace anchor that fires on a white image (short-range anchors, 128 px)."""
BLAZE_REG = np.array([2.0, -3.0, 40.0, 48.0], np.float32)
"""dx, dy, w, h (input pixels) regressed from that anchor."""

GRID_CELLS = [
    # (level, gx, gy, class, logit, w, h): stride 8 level is 4x4, stride 16 level is 2x2 (32 px input)
    (0, 1, 2, 1, 3.0, 10.0, 20.0),
    (1, 1, 1, 0, 2.0, 16.0, 16.0),
]


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _grid_tables() -> list[tuple[np.ndarray, np.ndarray]]:
    """(A, B) per level of a yolo_grid head: centre offsets 0 (cell centre), sizes and logits set."""
    tables = []
    for level, cells in enumerate((4, 2)):
        stride = SIZE // cells
        a = np.zeros((cells, cells, 4 + NUM_CLASSES), np.float32)
        a[..., 4:] = -8.0
        b = np.zeros_like(a)
        for lv, gx, gy, cls, logit, w, h in GRID_CELLS:
            if lv != level:
                continue
            a[gy, gx, 2] = _logit(np.sqrt(w / (5.0 * stride)) / 2)
            a[gy, gx, 3] = _logit(np.sqrt(h / (5.0 * stride)) / 2)
            b[gy, gx, 4 + cls] = logit + 8.0
        tables.append((a, b))
    return tables


EXPECTED = {
    "yolo": {"boxes_cxcywh": YOLO_BOXES[:2].tolist(), "labels": YOLO_CLASS[:2].tolist(), "scores": YOLO_SCORE[:2].tolist()},
    "ssd": {"boxes_yxyx": [[0.1, 0.2, 0.3, 0.5], [0.5, 0.5, 0.9, 0.7]], "labels": [1, 0], "scores": [0.9, 0.7]},
    "blazeface": {"anchor": BLAZE_ANCHOR, "reg": BLAZE_REG.tolist(), "logit": 5.0},
}


def _yolo_tables(v8: bool) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) for a YOLO head: boxes constant, scores proportional to m."""
    rows = NUM_ANCHORS
    a = np.zeros((rows, 4 + NUM_CLASSES + (0 if v8 else 1)), np.float32)
    b = np.zeros_like(a)
    a[:3, :4] = YOLO_BOXES
    a[3:, :4] = [16.0, 16.0, 4.0, 4.0]
    off = 4 if v8 else 5
    for i in range(3):
        if v8:
            b[i, off + YOLO_CLASS[i]] = YOLO_SCORE[i]
        else:
            b[i, 4] = 1.0
            b[i, off + YOLO_CLASS[i]] = YOLO_SCORE[i]
    if v8:
        a, b = a.T.copy(), b.T.copy()
        # v8 exports normalised coordinates here, to exercise that path
        a[:4] /= SIZE
    return a, b


def _graph(size: int, outputs: list[tuple[np.ndarray, np.ndarray]], signed: bool):
    """A tf.function image -> [A_k + B_k * m]."""
    import tensorflow as tf

    consts = [(tf.constant(a[None]), tf.constant(b[None])) for a, b in outputs]

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="image")])
    def model(image):
        m = tf.reduce_mean(image[:, :8, :8, :])  # small reduction: int8 mean kernels stay exact
        if signed:
            m = (m + 1.0) / 2.0
        return [a + b * m for a, b in consts]

    return model


def _convert(fn, quant: str | None, signed: bool) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    if quant:
        lo = -1.0 if signed else 0.0

        def rep():
            for v in np.linspace(0.0, 1.0, 11):
                yield [np.full((1, *fn.input_signature[0].shape[1:]), lo + v * (1 - lo), np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = {"int8": tf.int8, "uint8": tf.uint8}[quant]
        conv.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[quant]
    return conv.convert()


def _ssd() -> bytes:
    """Float model ending in TFLite_Detection_PostProcess (the op TF's object-detection export uses)."""
    import tensorflow as tf

    n = 4
    anchors = np.array([[0.5, 0.5, 1.0, 1.0]] * n, np.float32)  # ycenter, xcenter, h, w
    exp = EXPECTED["ssd"]
    enc = np.zeros((n, 4), np.float32)
    scores = np.zeros((n, NUM_CLASSES + 1), np.float32)  # column 0 is background
    for i, (box, label, score) in enumerate(zip(exp["boxes_yxyx"], exp["labels"], exp["scores"], strict=True)):
        y1, x1, y2, x2 = box
        # encodings with scales 10/10/5/5 relative to a unit anchor centred at 0.5
        enc[i] = [((y1 + y2) / 2 - 0.5) * 10, ((x1 + x2) / 2 - 0.5) * 10, np.log(y2 - y1) * 5, np.log(x2 - x1) * 5]
        scores[i, label + 1] = score
    attrs = " ".join(
        [
            'name: "TFLite_Detection_PostProcess"',
            'attr { key: "max_detections" value { i: 10 } }',
            'attr { key: "max_classes_per_detection" value { i: 1 } }',
            'attr { key: "detections_per_class" value { i: 10 } }',
            'attr { key: "use_regular_nms" value { b: false } }',
            'attr { key: "nms_score_threshold" value { f: 0.300000 } }',
            'attr { key: "nms_iou_threshold" value { f: 0.600000 } }',
            'attr { key: "y_scale" value { f: 10.0 } }',
            'attr { key: "x_scale" value { f: 10.0 } }',
            'attr { key: "h_scale" value { f: 5.0 } }',
            'attr { key: "w_scale" value { f: 5.0 } }',
            f'attr {{ key: "num_classes" value {{ i: {NUM_CLASSES} }} }}',
        ]
    )

    @tf.function(experimental_implements=attrs)
    def postprocess(box_encodings, class_predictions, anchor_boxes):
        zero = tf.constant(0.0)
        return zero, zero, zero, zero

    enc_c, sc_c, anc_c = tf.constant(enc[None]), tf.constant(scores[None]), tf.constant(anchors)

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32, name="image")])
        def __call__(self, image):
            m = (tf.reduce_mean(image) + 1.0) / 2.0
            return postprocess(enc_c * m + enc_c * (1.0 - m), sc_c * m, anc_c)

    import tempfile

    module = Model()
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures=module.__call__.get_concrete_function())
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.allow_custom_ops = True
        return conv.convert()


def _blazeface(quant: str | None) -> bytes:
    from edged.stages.detect.decoders import BLAZEFACE_ANCHORS, blazeface_anchors

    n = len(blazeface_anchors(BLAZEFACE_ANCHORS["short_range"]))
    reg_a = np.zeros((n, 16), np.float32)
    reg_b = np.zeros_like(reg_a)
    reg_b[BLAZE_ANCHOR, :4] = BLAZE_REG  # regressors scale with m too, so they stay a computed tensor
    log_a = np.full((n, 1), -10.0, np.float32)
    log_b = np.zeros_like(log_a)
    log_b[BLAZE_ANCHOR] = 15.0
    fn = _graph(128, [(reg_a, reg_b), (log_a, log_b)], signed=True)
    return _convert(fn, quant, signed=True)


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "tiny_yolov5_uint8.tflite": _convert(_graph(SIZE, [_yolo_tables(False)], False), "uint8", False),
        "tiny_yolov5_float.tflite": _convert(_graph(SIZE, [_yolo_tables(False)], False), None, False),
        "tiny_yolov8_int8.tflite": _convert(_graph(SIZE, [_yolo_tables(True)], False), "int8", False),
        "tiny_yolo_grid_int8.tflite": _convert(_graph(SIZE, _grid_tables(), False), "int8", False),
        "tiny_ssd_float.tflite": _ssd(),
        "tiny_blazeface_int8.tflite": _blazeface("int8"),
        "tiny_blazeface_float.tflite": _blazeface(None),
    }
    paths = []
    for name, data in files.items():
        (out / name).write_bytes(data)
        paths.append(out / name)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "data")
    args = ap.parse_args()
    for p in build(args.out):
        print(f"{p}  {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
