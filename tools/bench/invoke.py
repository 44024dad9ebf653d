"""Invoke time of float vs int8 model pairs, interleaved in one run (needs only numpy + a TFLite runtime).

    python -m tools.bench.invoke [--threads 1 2] [--wheel path/to/ai_edge_litert.whl]

``--wheel`` unpacks an ai-edge-litert wheel to a temporary folder and imports it from there (for
a machine where it is not installed). Prints one line per model pair and thread count.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [
    ("face BlazeFace 128", "models/face_blazeface_short_range_float.tflite", "models/face_blazeface_short_range_int8.tflite"),
    ("edged-det 640x384", "models/edged_det_float.tflite", "models/edged_det_int8.tflite"),
]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_ms(interpreters: list, rounds: int, per_round: int) -> list[float]:
    """Median ms per invoke of each (allocated) interpreter on a zero input, interleaved round by round."""
    for it in interpreters:
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        for _ in range(5):
            it.invoke()
    samples: list[list[float]] = [[] for _ in interpreters]
    for _ in range(rounds):
        for k, it in enumerate(interpreters):
            t0 = time.perf_counter()
            for _ in range(per_round):
                it.invoke()
            samples[k].append((time.perf_counter() - t0) / per_round * 1000)
    return [statistics.median(s) for s in samples]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--wheel", type=Path)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    if args.wheel:
        tmp = tempfile.mkdtemp()
        zipfile.ZipFile(args.wheel).extractall(tmp)
        sys.path.insert(0, tmp)
    from ai_edge_litert.interpreter import Interpreter

    flags = ""
    try:
        flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
    except (OSError, StopIteration):
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm") if f" {f}" in flags]
    print(f"cpu: {cpu_name()}; int8-relevant flags: {', '.join(isa) or 'none'}")
    for name, f, q in PAIRS:
        if not (ROOT / f).exists() or not (ROOT / q).exists():
            continue
        for threads in args.threads:
            its = []
            for p in (f, q):
                it = Interpreter(model_path=str(ROOT / p), num_threads=threads)
                it.allocate_tensors()
                its.append(it)
            per_round = 20 if "face" in name else 3
            fm, qm = median_ms(its, args.rounds, per_round)
            print(f"{name}, {threads} thread(s): float {fm:.2f} ms, int8 {qm:.2f} ms, int8/float {qm / fm:.2f}")


if __name__ == "__main__":
    main()
