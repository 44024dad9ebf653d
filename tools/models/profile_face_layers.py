"""Where BlazeFace's int8 model gains over float, and what the int8 graph rewrite adds.

    python -m tools.models.profile_face_layers [K ...]     # needs tensorflow (the ``models`` extra)
    python -m tools.models.profile_face_layers --rewrites [--threads 1 2]

Cuts: for each K, the float BlazeFace graph (rebuilt op by op by ``tools.models.build_face_model``) is
truncated after its first K operators (DEQUANTIZE of the fp16 weights not counted), then converted
to a float and to a full-int8 TFLite file (calibrated like the shipped model, with its graph
rewrite), and both are timed side by side (1 thread, median of 7 rounds). The differences between
consecutive cuts are the cost of each stretch of the network in float and in int8.

``--rewrites``: the whole model, float and int8, with and without the rewrite
(``build_face_model.INT8_GRAPH``) and with only its "channel pads as concatenated zeros" part,
timed in interleaved rounds against the float original, so the gain of quantisation and the gain
of the rewrite can be told apart.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_CUTS = (1, 4, 9, 21, 46)


def interleaved_ms(models: dict[str, bytes], threads: int, rounds: int = 30, per_round: int = 200) -> dict[str, float]:
    """Median ms per invoke of each model, all timed in the same interleaved rounds."""
    from ai_edge_litert.interpreter import Interpreter

    from tools.bench.invoke import median_ms

    its = []
    for content in models.values():
        it = Interpreter(model_content=content, num_threads=threads)
        it.allocate_tensors()
        its.append(it)
    return dict(zip(models, median_ms(its, rounds, per_round), strict=True))


def invoke_ms(path: Path) -> float:
    """Median ms per invoke of one model file, 1 thread."""
    return interleaved_ms({"model": path.read_bytes()}, 1, rounds=7, per_round=300)["model"]


def compare_rewrites(threads: list[int]) -> None:
    from tools.eval.face_photos import calibration_images
    from tools.models.build_face_model import INT8_GRAPH, float_model, float_tflite, quantise, tf_function_from_tflite

    src = float_model("short_range")
    images = calibration_images()[:40]
    pads_only = {"concat_pads": True}

    models = {
        "float original": src.read_bytes(),
        "float, pads as concat": float_tflite(tf_function_from_tflite(src, **pads_only)),
        "float, full rewrite": float_tflite(tf_function_from_tflite(src, **INT8_GRAPH)),
        "int8, no rewrite": quantise(tf_function_from_tflite(src, clip_logits=True), 128, images),
        "int8, pads as concat": quantise(tf_function_from_tflite(src, clip_logits=True, **pads_only), 128, images),
        "int8, full rewrite (shipped recipe)": quantise(tf_function_from_tflite(src, clip_logits=True, **INT8_GRAPH), 128, images),
    }
    print(f"rewrite: {INT8_GRAPH}")
    for t in threads:
        ms = interleaved_ms(models, t)
        base = ms["float original"]
        for name, v in ms.items():
            print(f"{t} thread(s)  {name:36s} {v:.3f} ms  / float original {v / base:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cuts", type=int, nargs="*", help=f"operator counts to cut after (default {DEFAULT_CUTS} and all)")
    ap.add_argument("--rewrites", action="store_true", help="time the whole model with and without the int8 graph rewrite")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts for --rewrites")
    args = ap.parse_args()
    if args.rewrites:
        compare_rewrites(args.threads)
        return

    from tensorflow.lite.tools import flatbuffer_utils

    from tools.eval.face_photos import calibration_images
    from tools.models.build_face_model import (
        INT8_GRAPH,
        float_model,
        float_tflite,
        op_kind,
        quantise,
        tf_function_from_tflite,
    )

    src = float_model("short_range")
    model = flatbuffer_utils.read_model(str(src))
    kinds = [op_kind(model, op) for op in model.subgraphs[0].operators]
    real = [i for i, k in enumerate(kinds) if k != "DEQUANTIZE"]
    cuts = args.cuts or [*DEFAULT_CUTS, len(real)]
    images = calibration_images()[:40]
    tmp = Path(tempfile.mkdtemp(prefix="face-layers-"))
    previous = (0.0, 0.0)
    print(f"{len(real)} operators; cut: float ms, int8 ms (stretch since the previous cut: float, int8, float/int8)")
    for k in cuts:
        cut = flatbuffer_utils.read_model(str(src))
        graph = cut.subgraphs[0]
        keep = set(real[:k])
        last = graph.operators[real[k - 1]]
        graph.operators = [op for i, op in enumerate(graph.operators) if kinds[i] == "DEQUANTIZE" or i in keep]
        graph.outputs = np.array([last.outputs[0]], dtype=np.int32)
        path = tmp / f"cut{k}.tflite"
        flatbuffer_utils.write_model(cut, str(path))
        fn = tf_function_from_tflite(path)
        float_path, int8_path = tmp / f"cut{k}_float.tflite", tmp / f"cut{k}_int8.tflite"
        float_path.write_bytes(float_tflite(fn))
        int8_path.write_bytes(quantise(tf_function_from_tflite(path, **INT8_GRAPH), 128, images))
        f_ms, q_ms = invoke_ms(float_path), invoke_ms(int8_path)
        df, dq = f_ms - previous[0], q_ms - previous[1]
        print(f"first {k:3d} ({kinds[real[k - 1]]:>17s}): float {f_ms:.3f}, int8 {q_ms:.3f}  "
              f"(stretch: {df:.3f}, {dq:.3f}, {df / dq if dq > 0 else float('nan'):.2f}x)", flush=True)
        previous = (f_ms, q_ms)


if __name__ == "__main__":
    main()
