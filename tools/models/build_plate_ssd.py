"""Build HyperLPR's plate SSD (a real-plate detector) as float32 and full-int8 TFLite at a fixed input size.

    python -m tools.models.build_plate_ssd [--size W H] [--wheel FILE] [--out DIR]
    python -m tools.models.build_plate_ssd --bench FILE [FILE ...]   # invoke ms, needs only a TFLite runtime
    python -m tools.models.build_plate_ssd --eval FILE [FILE ...] [--score S] [--draw DIR]  # real plates vs edged-det

Run it with a Python that has tensorflow besides edged's own dependencies (e.g. a separate build
venv); nothing under ``edged/`` imports tensorflow.

Source: ``hyperlpr/models/dnn/mininet_ssd_v1.prototxt`` and ``.caffemodel`` from the PyPI wheel
``hyperlpr`` 0.0.2 (MIT, Jack Yu / zeusees HyperLPR): an SSD on a MobileNet of width 0.25 with
batch norm folded into the convolutions, two classes (background, plate), six prediction levels
with Caffe ``PriorBox`` anchors whose sizes are absolute input pixels (51-492 px, aspect ratios
1, 2, 3), trained on Chinese plates. Without ``--wheel`` it runs ``pip download --no-deps
hyperlpr==0.0.2`` into a temporary folder. OpenCV 5 no longer reads Caffe files, so the
prototxt is parsed here (protobuf text format) and the caffemodel read from its protobuf wire
format; the layers are rebuilt as TensorFlow ops in NHWC (Caffe's symmetric padding as explicit
pads). HyperLPR's ImageNet mean/std normalisation is folded into the first convolution, so the
input is RGB pixels 0-255 (``input_range = (0, 255)``).

The outputs are a ``TFLite_Detection_PostProcess`` op (the ``ssd`` layout of
``edged/stages/detect/decoders.py``): the box deltas (Caffe ``CENTER_SIZE`` code, variances 0.1
and 0.2, reordered to the op's y, x, h, w), the softmax scores and the anchors generated here
for the chosen input size (the network is fully convolutional; anchors are in input pixels),
fast NMS at IoU 0.45, at most :data:`MAX_DETECTIONS` boxes scoring above :data:`NMS_SCORE`.

int8: ``TFLiteConverter`` full integer (int8 input and network, the post-processing op in float)
calibrated on real images with vehicles and plates (``alpr`` test.jpg, the ultralytics/yolov5 bus
photos, darknet's dog.jpg, OpenCV's licenseplate_motion.jpg, vtest.avi and Megamind.avi frames),
whole and as the daemon's vehicle crops (NanoDet boxes grown 1.1x), letterboxed black. The build
prints float TFLite vs OpenCV 4 DNN (when the installed OpenCV still reads Caffe) and int8 vs
float detections, and the multiply-accumulate count.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from tools.models.tflite_export import input_size, letterbox_rgb, representative

ROOT = Path(__file__).resolve().parents[2]
WHEEL = "hyperlpr==0.0.2"
MEMBER = "hyperlpr/models/dnn/mininet_ssd_v1"
DEFAULT_SIZE = (320, 192)
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
MAX_DETECTIONS = 20
NMS_SCORE = 0.05
NMS_IOU = 0.45
VARIANCES = (0.1, 0.1, 0.2, 0.2)


# ------------------------------------------------------------------------------------ source
def find_files(wheel: Path | None, tmp: Path) -> tuple[str, bytes]:
    """The prototxt text and caffemodel bytes from the hyperlpr wheel (downloaded when not given)."""
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(tmp)], check=True)
        wheel = next(tmp.glob("hyperlpr-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        return z.read(MEMBER + ".prototxt").decode(), z.read(MEMBER + ".caffemodel")


def parse_prototxt(text: str) -> list[dict[str, Any]]:
    """The ``layer { ... }`` blocks of a Caffe prototxt as nested dicts (repeated keys become lists)."""
    tokens = text.replace("{", " { ").replace("}", " } ").split()
    lists = {"bottom", "aspect_ratio", "variance", "dim", "layer", "order"}
    pos = 0

    def scalar(raw: str) -> Any:
        if raw.startswith('"'):
            return raw.strip('"')
        for kind in (int, float):
            try:
                return kind(raw)
            except ValueError:
                pass
        return raw

    def block() -> dict[str, Any]:
        nonlocal pos
        out: dict[str, list[Any]] = {}
        while pos < len(tokens) and tokens[pos] != "}":
            key = tokens[pos].rstrip(":")
            pos += 1
            if tokens[pos] == "{":
                pos += 1
                value = block()
            else:
                value = scalar(tokens[pos])
            pos += 1
            out.setdefault(key, []).append(value)
        return {k: v if k in lists else v[-1] for k, v in out.items()}

    return block().get("layer", [])


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; length-delimited values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire} not supported")
        yield num, wire, value


def _blob(buf: bytes) -> np.ndarray:
    """A Caffe ``BlobProto`` (shape field 7 or legacy num/channels/height/width, float data field 5)."""
    dims: list[int] = []
    legacy = [0, 0, 0, 0]
    data: list[np.ndarray] = []
    for num, wire, value in _fields(buf):
        if num == 7:
            for n2, w2, v2 in _fields(value):
                if n2 == 1 and w2 == 2:
                    p = 0
                    while p < len(v2):
                        d, p = _varint(v2, p)
                        dims.append(d)
                elif n2 == 1:
                    dims.append(v2)
        elif num in (1, 2, 3, 4) and wire == 0:
            legacy[num - 1] = value
        elif num == 5 and wire == 2:
            data.append(np.frombuffer(value, "<f4"))
        elif num == 5:
            data.append(np.asarray(struct.unpack("<f", value), np.float32))
    arr = np.concatenate(data) if data else np.zeros(0, np.float32)
    shape = dims or [d for d in legacy if d] or [arr.size]
    return arr.reshape(shape).astype(np.float32)


def parse_caffemodel(buf: bytes) -> dict[str, list[np.ndarray]]:
    """Layer name -> its weight blobs, from a ``NetParameter`` (``layer`` field 100: name 1, blobs 7)."""
    out: dict[str, list[np.ndarray]] = {}
    for num, wire, value in _fields(buf):
        if num != 100 or wire != 2:
            continue
        name, blobs = "", []
        for n2, _, v2 in _fields(value):
            if n2 == 1:
                name = v2.decode()
            elif n2 == 7:
                blobs.append(_blob(v2))
        if blobs:
            out[name] = blobs
    return out


# ------------------------------------------------------------------------------------ anchors
def prior_boxes(param: dict[str, Any], fmap_hw: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Caffe ``PriorBox`` anchors of one level as (H x W x A, 4) normalised (cy, cx, h, w), in Caffe's order."""
    w_img, h_img = size
    fh, fw = fmap_hw
    step_w, step_h = w_img / fw, h_img / fh
    offset = float(param.get("offset", 0.5))
    mins = [float(param["min_size"])]
    maxs = [float(param["max_size"])] if "max_size" in param else []
    ratios = [1.0]
    for r in param.get("aspect_ratio", []):
        for cand in ([r, 1.0 / r] if param.get("flip", "true") == "true" else [r]):
            if all(abs(cand - q) > 1e-6 for q in ratios):
                ratios.append(cand)
    cell: list[tuple[float, float]] = []
    for i, m in enumerate(mins):
        cell.append((m, m))
        if maxs:
            s = float(np.sqrt(m * maxs[i]))
            cell.append((s, s))
        cell += [(m * np.sqrt(r), m / np.sqrt(r)) for r in ratios[1:]]
    ys, xs = np.meshgrid((np.arange(fh) + offset) * step_h, (np.arange(fw) + offset) * step_w, indexing="ij")
    out = np.zeros((fh, fw, len(cell), 4), np.float32)
    for k, (bw, bh) in enumerate(cell):
        out[:, :, k] = np.stack([ys / h_img, xs / w_img, np.full_like(ys, bh / h_img), np.full_like(xs, bw / w_img)], -1)
    return out.reshape(-1, 4)


# ------------------------------------------------------------------------------ translation
class Net:
    """The parsed SSD: backbone convolutions, the loc/conf heads per level and their PriorBox params."""

    def __init__(self, prototxt: str, caffemodel: bytes) -> None:
        self.layers = parse_prototxt(prototxt)
        self.blobs = parse_caffemodel(caffemodel)
        by_top = {lay["top"]: lay for lay in self.layers}
        det = next(lay for lay in self.layers if lay["type"] == "DetectionOutput")
        loc_concat, conf_flat, prior_concat = (by_top[b] for b in det["bottom"])
        conf_concat = by_top[by_top[by_top[conf_flat["bottom"][0]]["bottom"][0]]["bottom"][0]]

        def head_convs(concat: dict[str, Any]) -> list[str]:
            return [by_top[by_top[b]["bottom"][0]]["bottom"][0] for b in concat["bottom"]]

        self.loc = head_convs(loc_concat)
        self.conf = head_convs(conf_concat)
        self.priors = [by_top[b] for b in prior_concat["bottom"]]
        self.convs = {lay["name"]: lay for lay in self.layers if lay["type"] == "Convolution"}
        self.relu_after = {lay["bottom"][0] for lay in self.layers if lay["type"] == "ReLU"}

    def level_shapes(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """Feature-map (H, W) of each prediction level for an input ``size`` (w, h), as Caffe computes them."""
        shapes: dict[str, tuple[int, int]] = {"data": (size[1], size[0])}
        for lay in self.layers:
            if lay["type"] == "Convolution":
                p = lay["convolution_param"]
                h, w = shapes[lay["bottom"][0]]
                k, s, pad = p["kernel_size"], p.get("stride", 1), p.get("pad", 0)
                shapes[lay["top"]] = ((h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1)
        return [shapes[pb["bottom"][0]] for pb in self.priors]

    def anchors(self, size: tuple[int, int]) -> np.ndarray:
        """All anchors (N, 4) normalised (cy, cx, h, w), in the order of the box and score outputs."""
        return np.concatenate([prior_boxes(pb["prior_box_param"], hw, size)
                               for pb, hw in zip(self.priors, self.level_shapes(size), strict=True)])

    def conv_weights(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(OIHW weights, bias); the first convolution takes RGB 0-255 (ImageNet mean/std folded in)."""
        w, b = self.blobs[name][0], self.blobs[name][1]
        if self.convs[name]["bottom"][0] == "data":
            scale = 1.0 / (255.0 * np.asarray(STD_RGB, np.float32))
            shift = -np.asarray(MEAN_RGB, np.float32) / np.asarray(STD_RGB, np.float32)
            b = b + (w * shift[None, :, None, None]).sum(axis=(1, 2, 3))
            w = w * scale[None, :, None, None]
        return w, b

    def function(self, macs: list[int] | None = None) -> Any:
        """A function NHWC RGB 0-255 image -> (box deltas (1, N, 4) as y, x, h, w, scores (1, N, 2))."""
        import tensorflow as tf

        def conv(x: Any, name: str) -> Any:
            p = self.convs[name]["convolution_param"]
            w, b = self.conv_weights(name)
            pad, s, g = p.get("pad", 0), p.get("stride", 1), p.get("group", 1)
            if pad:
                x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            o, i_g, kh, kw = w.shape
            if g == 1:
                y = tf.nn.conv2d(x, tf.constant(w.transpose(2, 3, 1, 0)), [1, s, s, 1], "VALID")
            elif g == o and i_g == 1:
                y = tf.nn.depthwise_conv2d(x, tf.constant(w.transpose(2, 3, 0, 1)), [1, s, s, 1], "VALID")
            else:
                raise NotImplementedError(f"grouped convolution {name} (group {g})")
            if macs is not None:
                macs.append(int(np.prod(y.shape[1:])) * i_g * kh * kw)
            y = tf.nn.bias_add(y, tf.constant(b))
            return tf.nn.relu(y) if self.convs[name]["top"] in self.relu_after else y

        heads = set(self.loc) | set(self.conf)

        def run(x: Any) -> tuple[Any, Any]:
            env: dict[str, Any] = {"data": x}
            for lay in self.layers:
                if lay["type"] == "Convolution" and lay["name"] not in heads:
                    env[lay["top"]] = conv(env[lay["bottom"][0]], lay["name"])
            locs, confs = [], []
            for loc, cf in zip(self.loc, self.conf, strict=True):
                d = conv(env[self.convs[loc]["bottom"][0]], loc)
                d = tf.reshape(d, [1, -1, 4])
                locs.append(tf.gather(d, [1, 0, 3, 2], axis=-1))  # Caffe x, y, w, h -> y, x, h, w
                confs.append(tf.reshape(conv(env[self.convs[cf]["bottom"][0]], cf), [1, -1, 2]))
            return tf.concat(locs, axis=1), tf.nn.softmax(tf.concat(confs, axis=1), axis=-1)

        return run


def postprocess_fn(anchors: np.ndarray) -> Any:
    """A tf.function the TFLite converter turns into ``TFLite_Detection_PostProcess`` (its body is a stand-in)."""
    import tensorflow as tf

    attrs = {"max_detections": MAX_DETECTIONS, "max_classes_per_detection": 1, "detections_per_class": MAX_DETECTIONS,
             "num_classes": 1, "use_regular_nms": False, "nms_score_threshold": NMS_SCORE,
             "nms_iou_threshold": NMS_IOU, "y_scale": 1 / VARIANCES[0], "x_scale": 1 / VARIANCES[1],
             "h_scale": 1 / VARIANCES[2], "w_scale": 1 / VARIANCES[3]}
    parts = ['name: "TFLite_Detection_PostProcess"']
    for k, v in attrs.items():
        kind = "b" if isinstance(v, bool) else ("i" if isinstance(v, int) else "f")
        val = str(v).lower() if isinstance(v, bool) else v
        parts.append(f'attr {{ key: "{k}" value {{ {kind}: {val} }} }}')

    @tf.function(experimental_implements=" ".join(parts))
    def post(boxes: Any, scores: Any, anchor: Any) -> tuple[Any, Any, Any, Any]:
        return (tf.zeros([1, MAX_DETECTIONS, 4], name="boxes"), tf.zeros([1, MAX_DETECTIONS], name="classes"),
                tf.zeros([1, MAX_DETECTIONS], name="scores"), tf.zeros([1], name="num_detections"))

    const = tf.constant(anchors)
    return lambda boxes, scores: post(boxes, scores, const)


def concrete(net: Net, size: tuple[int, int], with_post: bool = True) -> tuple[Any, int]:
    """The traced TF function at input ``size`` (w, h) and its multiply-accumulate count."""
    import tensorflow as tf

    macs: list[int] = []
    body = net.function(macs)
    post = postprocess_fn(net.anchors(size)) if with_post else None

    def full(x: Any) -> Any:
        boxes, scores = body(x)
        return post(boxes, scores) if post else (boxes, scores)

    fn = tf.function(full, input_signature=[tf.TensorSpec([1, size[1], size[0], 3], tf.float32, name="image")])
    cf = fn.get_concrete_function()
    return cf, sum(macs)


# --------------------------------------------------------------------------------------- data
def video_frames(path: Path, every: int, limit: int) -> list[np.ndarray]:
    """Every ``every``-th frame of a video, at most ``limit``."""
    cap = cv2.VideoCapture(str(path))
    out, i = [], 0
    while len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            out.append(frame)
        i += 1
    cap.release()
    return out


def calibration_images() -> list[np.ndarray]:
    """Real BGR images with vehicles and plates: whole pictures, video frames and NanoDet vehicle crops."""
    from tools.eval import real_data
    from tools.models import plate_data

    keys = ["alpr_test.jpg", "ultralytics_bus.jpg", "yolov5_bus.jpg", "real:dog.jpg", "real:licenseplate_motion.jpg"]
    whole = {k: plate_data.read(k) for k in keys}
    vids = real_data.videos()
    frames = video_frames(vids["vtest.avi"], 60, 10) + video_frames(vids["Megamind.avi"], 40, 8)
    out = list(whole.values()) + frames
    boxes = plate_data.vehicle_boxes({**whole, **{f"f{i}": f for i, f in enumerate(frames)}})
    for key, img in list(whole.items()) + [(f"f{i}", f) for i, f in enumerate(frames)]:
        for box in boxes[key]:
            x, y, w, h = plate_data.crop_region(box, img.shape)
            out.append(img[y : y + h, x : x + w])
    # the alpr cars at the plate sizes the daemon meets (plates 20-80 px in the frame)
    alpr = whole["alpr_test.jpg"]
    for s in (0.25, 0.4, 0.6):
        small = cv2.resize(alpr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        for box in plate_data.vehicle_boxes({"a": small})["a"]:
            x, y, w, h = plate_data.crop_region(box, small.shape)
            out.append(small[y : y + h, x : x + w])
    return out


# ------------------------------------------------------------------------------------ building
def convert(cf: Any, size: tuple[int, int], images: list[np.ndarray] | None) -> bytes:
    """TFLite flatbuffer: float32, or full int8 (int8 input, float post-processing) calibrated on ``images``.

    The function goes through a SavedModel: only there does the converter see the post-processing
    stand-in as a composite function and replace it with ``TFLite_Detection_PostProcess``.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="plate-ssd-") as tmp:
        module = tf.Module()
        module.serve = cf.function if hasattr(cf, "function") else cf
        tf.saved_model.save(module, tmp, signatures={"serving_default": cf})
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.allow_custom_ops = True
        if images is not None:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative(images, size)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            conv.inference_input_type = tf.int8
        return conv.convert()


def detections(path: Path, bgr: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x1, y1, x2, y2 in input pixels) and scores of a built model on a letterboxed image."""
    from edged.stages.detect.runtime import TFLiteModel

    m = TFLiteModel(path, 1)
    outs = m.run_pixels(letterbox_rgb(bgr, m.input_size).astype(np.uint8), (0.0, 255.0))
    from edged.stages.detect import decoders

    order = decoders.ssd_output_order([o.name for o in m.outputs], [o.shape for o in m.outputs])
    raw = decoders.decode_ssd(outs, m.input_size, min_score, order)
    return raw.boxes, raw.scores


def opencv_reference(prototxt: str, caffemodel: bytes, bgr: np.ndarray, size: tuple[int, int],
                     min_score: float) -> tuple[np.ndarray, np.ndarray] | None:
    """HyperLPR's own forward pass through OpenCV's Caffe importer (OpenCV 4), or None when absent."""
    if not hasattr(cv2.dnn, "readNetFromCaffe"):
        return None
    net = cv2.dnn.readNetFromCaffe(bytearray(prototxt.encode()), bytearray(caffemodel))
    rgb = letterbox_rgb(bgr, size) / 255.0
    x = (rgb - np.asarray(MEAN_RGB, np.float32)) / np.asarray(STD_RGB, np.float32)
    net.setInput(x.transpose(2, 0, 1)[None].astype(np.float32))
    out = net.forward()[0, 0]
    out = out[out[:, 2] >= min_score]
    w, h = size
    return (out[:, 3:7] * np.array([w, h, w, h], np.float32)).astype(np.float32), out[:, 2]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of x1, y1, x2, y2 boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def agreement(ref: np.ndarray, found: np.ndarray) -> str:
    """'k/n' reference boxes matched at IoU >= 0.5."""
    if len(ref) == 0:
        return "0/0"
    hit = int((iou_matrix(ref, found).max(axis=1) >= 0.5).sum()) if len(found) else 0
    return f"{hit}/{len(ref)}"


def build(prototxt: str, caffemodel: bytes, size: tuple[int, int], out: Path) -> tuple[Path, Path]:
    """Write ``plate_hyperlpr_ssd_<W>x<H>_{float,int8}.tflite`` into ``out`` and print the checks."""
    net = Net(prototxt, caffemodel)
    cf, macs = concrete(net, size)
    print(f"plate SSD {size[0]}x{size[1]}: {macs / 1e6:.1f} M multiply-accumulates, "
          f"{len(net.anchors(size))} anchors, levels {net.level_shapes(size)}")
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"plate_hyperlpr_ssd_{size[0]}x{size[1]}"
    f32, i8 = Path(f"{stem}_float.tflite"), Path(f"{stem}_int8.tflite")
    f32.write_bytes(convert(cf, size, None))
    images = calibration_images()
    print(f"calibrating on {len(images)} real images and vehicle crops")
    i8.write_bytes(convert(cf, size, images))
    for thr in (0.5, 0.3):
        rows = {"opencv": [], "float": [], "int8": []}
        for bgr in images:
            ref = opencv_reference(prototxt, caffemodel, bgr, size, thr)
            fb, _ = detections(f32, bgr, thr)
            ib, _ = detections(i8, bgr, thr)
            rows["float"].append((fb, ib))
            if ref is not None:
                rows["opencv"].append((ref[0], fb))
        n_f = sum(len(f) for f, _ in rows["float"])
        hit = sum(int((iou_matrix(f, i).max(axis=1) >= 0.5).sum()) if len(f) and len(i) else 0 for f, i in rows["float"])
        print(f"score >= {thr}: int8 finds {hit}/{n_f} of float's boxes (IoU 0.5), "
              f"int8 boxes {sum(len(i) for _, i in rows['float'])}")
        if rows["opencv"]:
            n_r = sum(len(r) for r, _ in rows["opencv"])
            hit = sum(int((iou_matrix(r, f).max(axis=1) >= 0.5).sum()) if len(r) and len(f) else 0 for r, f in rows["opencv"])
            print(f"score >= {thr}: float TFLite finds {hit}/{n_r} of OpenCV-DNN's boxes (IoU 0.5)")
    return f32, i8


# ------------------------------------------------------------------------------------ real plates
PLATE_WIDTHS = (20, 30, 45, 60, 80)
FRAME = (1280, 720)
VEHICLES = ["car", "truck", "bus", "motorcycle"]


def ssd_config(path: Path, crops: bool, score: float = 0.3) -> Any:
    """A ``plate`` ModelConfig for a built model: in vehicle crops only (``crops``) or on the whole frame only."""
    from edged.config import ModelConfig
    from edged.stages.detect.runtime import TFLiteModel

    size = TFLiteModel(path, 1).input_size
    extra: dict[str, Any] = dict(crops_from=VEHICLES, crop_shape="box", crop_grow=1.1, max_crop_fraction=0.6,
                                 full_frame=False) if crops else {}
    return ModelConfig(name="plate", file=str(path), layout="ssd", input_size=size, labels=["plate"],
                       score_threshold=score, nms_iou=0.45, input_range=(0.0, 255.0), **extra)


def real_plate_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, BGR frame, plate box to find, plate boxes that count neither way) on real plates.

    ``alpr`` test.jpg scaled so that one of its two plates is each of :data:`PLATE_WIDTHS` px wide,
    pasted at the left of a black 1280x720 frame (cropped to it), the other plate ignored;
    ``licenseplate_motion.jpg`` and vtest.avi frame 20 (two vans, plates ~12 px) as they are.
    """
    from tools.models import plate_data

    alpr = plate_data.read("alpr_test.jpg")
    plates = plate_data._real_plate_boxes("alpr_test.jpg")
    out = []
    for k, plate in enumerate(plates):
        for width in PLATE_WIDTHS:
            s = width / float(plate[2] - plate[0])
            small = cv2.resize(alpr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            frame = np.zeros((FRAME[1], FRAME[0], 3), np.uint8)
            h, w = min(small.shape[0], FRAME[1]), min(small.shape[1], FRAME[0])
            y0 = FRAME[1] - h
            frame[y0:, :w] = small[:h, :w]
            shift = np.array([0, y0, 0, y0], np.float32)
            out.append((f"alpr plate {k + 1} {width} px", frame, plate[None] * s + shift,
                        np.delete(plates, k, 0) * s + shift))
    for key in ("real:licenseplate_motion.jpg", "real:vtest.avi#0020"):
        out.append((key[5:], plate_data.read(key), plate_data._real_plate_boxes(key), np.zeros((0, 4), np.float32)))
    return out


def evaluate(models: dict[str, list[Any]], draw: Path | None) -> None:
    """Found rate (IoU >= 0.3) of each detector config on :func:`real_plate_cases`, false plate boxes, ms per frame."""
    from edged.config import DetectConfig
    from edged.core.classes import CLASS_NAMES
    from edged.stages.detect.detector import Detector

    plate_id = CLASS_NAMES.index("plate")
    cases = real_plate_cases()
    for name, cfgs in models.items():
        det = Detector.from_config(DetectConfig(models=cfgs, threads=1))
        found, false, times, rows = 0, 0, [], []
        for case, frame, gt, ignore in cases:
            t0 = time.perf_counter()
            d = det.detect(frame)
            times.append((time.perf_counter() - t0) * 1000)
            b = d.boxes[d.class_ids == plate_id]
            sc = d.scores[d.class_ids == plate_id]
            hit = iou_matrix(gt, b).max(axis=1) >= 0.3 if len(b) else np.zeros(len(gt), bool)
            near = np.concatenate([gt, ignore])
            stray = int((iou_matrix(b, near).max(axis=1) < 0.3).sum()) if len(b) else 0
            found += int(hit.sum())
            false += stray
            best = [f"{s:.2f}" for s, m in zip(sc, iou_matrix(b, gt).max(axis=1) >= 0.3 if len(b) else []) if m]
            rows.append(f"{case}: {int(hit.sum())}/{len(gt)} (score {','.join(best) or '-'}), {stray} false")
            if draw:
                img = frame.copy()
                for x1, y1, x2, y2 in gt.astype(int):
                    cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 0), 1)
                for (x1, y1, x2, y2), s in zip(b.astype(int), sc):
                    cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), 1)
                    cv2.putText(img, f"{s:.2f}", (x1, max(10, y1 - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
                draw.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(draw / f"{name}_{case.replace(' ', '_').replace('#', '_')}.png"), img)
        total = sum(len(g) for _, _, g, _ in cases)
        print(f"{name}: found {found}/{total}, false plate boxes {false}, median {statistics.median(times):.1f} ms/frame "
              "(1 thread, all its models)")
        for r in rows:
            print("   ", r)


def eval_main(files: list[Path], score: float, draw: Path | None) -> None:
    """Compare each built model (whole frame, and in vehicle crops) with the default edged-det crop model."""
    from edged.config import default_models

    objects = [m for m in default_models() if m.name == "objects"]
    models: dict[str, list[Any]] = {"default plate model crops": [m for m in default_models() if m.name in ("objects", "plate")]}
    for f in files:
        models[f"{f.stem} crops"] = objects + [ssd_config(f, True, score)]
        models[f"{f.stem} whole frame"] = [ssd_config(f, False, score)]
    evaluate(models, draw)


# --------------------------------------------------------------------------------------- bench
def bench(files: list[Path], threads: list[int], rounds: int = 15) -> None:
    """Median invoke ms (interleaved rounds, zero input) of each model file."""
    from tools.bench.invoke import median_ms

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
    for t in threads:
        its = [Interpreter(model_path=str(p), num_threads=t) for p in files]
        for it in its:
            it.allocate_tensors()
        for p, ms in zip(files, median_ms(its, rounds, 3)):
            print(f"{p.name}, {t} thread(s): {ms:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=DEFAULT_SIZE, metavar=("W", "H"))
    ap.add_argument("--wheel", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--bench", type=Path, nargs="+", help="time these model files instead of building")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--eval", type=Path, nargs="+", help="found rate of these built models on real plates instead")
    ap.add_argument("--score", type=float, default=0.3, help="score threshold for --eval")
    ap.add_argument("--draw", type=Path, help="with --eval: write each frame with its boxes into this folder")
    args = ap.parse_args()
    if args.eval:
        eval_main(args.eval, args.score, args.draw)
        return
    if args.bench:
        bench(args.bench, args.threads)
        return
    size = input_size(ap, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        prototxt, caffemodel = find_files(args.wheel, Path(tmp))
        build(prototxt, caffemodel, size, args.out)


if __name__ == "__main__":
    main()
