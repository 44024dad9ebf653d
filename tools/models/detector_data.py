"""Training and held-out data for the plate/vehicle/person detector (``tools/models/train_detector.py``).

Two sources, both labelled exactly:

- **Fake camera frames** (``edged_sim.camera.FakeCamera``): the project's road scene, rendered with seeds
  that the demo (seed 7) and the held-out set do not use. This is the renderer the evaluation scene
  uses, so accuracy on it is in-distribution.
- **Synthetic plates on real photographs**: plates drawn with a real TrueType font (DejaVu, shipped
  with matplotlib) in several styles, perspective-warped and composited onto crops of scikit-image
  photographs without people or plates (the same backgrounds as ``tools/eval/face_photos.py``).

Every sample is a ``(S, S, 3)`` uint8 BGR crop and a box list in crop pixels with class names.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("plate", "car", "person", "truck", "bus")
"""Model output order (these are edged class names)."""
TRAIN_SEEDS = range(100, 130)
HELDOUT_SEEDS = range(900, 906)
"""Fake-scene seeds: training and held-out sets never share one; the demo uses seed 7."""
MODEL_SCALE = 0.5
"""A 1280x720 frame enters the 640x384 model at half size: training crops are rescaled around it."""


@dataclass
class Sample:
    image: np.ndarray
    boxes: np.ndarray
    """(N, 4) float32 x1, y1, x2, y2 in image pixels."""
    labels: np.ndarray
    """(N,) int index into :data:`CLASSES`."""


# -------------------------------------------------------------------------------------- fake scene
def fake_frames(seed: int, n: int, every: int = 6, width: int = 1280, height: int = 720):
    """``n`` (bgr, boxes, labels) full frames from the fake camera with busy traffic."""
    from edged.core.classes import CLASS_NAMES
    from edged_sim.camera import FakeCamera

    cam = FakeCamera(width, height, 10.0, seed=seed, cars_per_minute=50.0, people_per_minute=40.0, events=False)
    cam.start()
    skip = int(np.random.default_rng(seed).integers(20, 60))
    for _ in range(skip):
        cam.capture()
    out = []
    while len(out) < n:
        for _ in range(every - 1):
            cam.capture()
        cap = cam.capture()
        gt = cap.ground_truth
        names = [CLASS_NAMES[c] for c in gt.class_ids]
        keep = np.array([nm in CLASSES and v >= 0.35 for nm, v in zip(names, gt.visible, strict=True)], bool)
        labels = np.array([CLASSES.index(nm) for nm, k in zip(names, keep, strict=True) if k], np.int64)
        out.append((cap.pixels, gt.boxes[keep].astype(np.float32), labels))
    cam.stop()
    return out


def crop_sample(img: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator, size: int,
                scale_range: tuple[float, float]) -> Sample:
    """Rescale by a random factor, take a random ``size`` crop (often centred on an object), keep
    boxes whose visible part is at least 40% of them and 2 px high."""
    s = float(rng.uniform(*scale_range))
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
    sx, sy = small.shape[1] / w, small.shape[0] / h
    b = boxes * np.array([sx, sy, sx, sy], np.float32)
    H, W = small.shape[:2]
    if len(b) and rng.random() < 0.8:
        cx, cy = (b[int(rng.integers(len(b)))].reshape(2, 2).mean(0) + rng.normal(0, size / 4, 2))
        x0, y0 = int(np.clip(cx - size / 2, 0, W - size)), int(np.clip(cy - size / 2, 0, H - size))
    else:
        x0, y0 = int(rng.integers(0, W - size + 1)), int(rng.integers(0, H - size + 1))
    crop = small[y0 : y0 + size, x0 : x0 + size]
    b = b - np.array([x0, y0, x0, y0], np.float32)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    c = np.clip(b, 0, size)
    carea = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
    ok = (carea >= 0.4 * np.maximum(area, 1e-6)) & (c[:, 3] - c[:, 1] >= 2) & (c[:, 2] - c[:, 0] >= 2)
    return Sample(np.ascontiguousarray(crop), c[ok], labels[ok])


# ---------------------------------------------------------------------------------- plates on photos
_STYLES = [
    # (background BGR, text BGR)
    ((245, 245, 245), (20, 20, 20)),
    ((40, 200, 250), (20, 20, 20)),
    ((250, 250, 250), (160, 40, 20)),
    ((30, 30, 30), (235, 235, 235)),
    ((200, 120, 30), (250, 250, 250)),
]


def _font_paths() -> list[Path]:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [folder / n for n in ("DejaVuSans-Bold.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSans.ttf", "DejaVuSansMono.ttf")]


def render_plate(rng: np.random.Generator, width: int) -> np.ndarray:
    """A plate image ``width`` px wide (aspect 3.5-5), random text, style and font."""
    from PIL import Image, ImageDraw, ImageFont

    aspect = float(rng.uniform(3.5, 5.0))
    big_w = 400
    big_h = int(big_w / aspect)
    bg, fg = _STYLES[int(rng.integers(len(_STYLES)))]
    im = Image.new("RGB", (big_w, big_h), bg[::-1])
    d = ImageDraw.Draw(im)
    d.rectangle((3, 3, big_w - 4, big_h - 4), outline=fg[::-1], width=int(rng.integers(2, 7)))
    n = int(rng.integers(5, 9))
    alphabet = string.ascii_uppercase + string.digits
    text = "".join(alphabet[int(rng.integers(len(alphabet)))] for _ in range(n))
    if rng.random() < 0.5:
        cut = int(rng.integers(2, n - 1))
        text = text[:cut] + rng.choice([" ", "-", " "]) + text[cut:]
    paths = _font_paths()
    font = ImageFont.truetype(str(paths[int(rng.integers(len(paths)))]), int(big_h * 0.62))
    l, t, r, bt = d.textbbox((0, 0), text, font=font)
    if r - l > big_w * 0.92:
        font = ImageFont.truetype(font.path, int(big_h * 0.62 * big_w * 0.92 / (r - l)))
        l, t, r, bt = d.textbbox((0, 0), text, font=font)
    d.text(((big_w - (r - l)) / 2 - l, (big_h - (bt - t)) / 2 - t), text, font=font, fill=fg[::-1])
    bgr = np.asarray(im)[:, :, ::-1]
    height = max(2, round(width / aspect))
    return cv2.resize(bgr, (max(4, width), height), interpolation=cv2.INTER_AREA)


def paste_warped(canvas: np.ndarray, patch: np.ndarray, cx: float, cy: float, rng: np.random.Generator) -> np.ndarray:
    """Paste ``patch`` rotated a little and foreshortened; returns its x1, y1, x2, y2 box."""
    ph, pw = patch.shape[:2]
    tilt = float(rng.normal(0, 0.06))
    squeeze = float(rng.uniform(0.8, 1.2))
    half = np.array([(-pw / 2, -ph / 2), (pw / 2, -ph / 2 * squeeze), (pw / 2, ph / 2 * squeeze), (-pw / 2, ph / 2)])
    rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    quad = (half @ rot.T + (cx, cy)).astype(np.float32)
    src = np.array([(0, 0), (pw, 0), (pw, ph), (0, ph)], np.float32)
    m = cv2.getPerspectiveTransform(src, quad)
    H, W = canvas.shape[:2]
    warped = cv2.warpPerspective(patch, m, (W, H), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(np.ones((ph, pw), np.float32), m, (W, H), flags=cv2.INTER_LINEAR)[:, :, None]
    canvas[:] = (canvas * (1 - alpha) + warped * alpha).astype(np.uint8)
    x1, y1 = quad.min(0)
    x2, y2 = quad.max(0)
    return np.array([x1, y1, x2, y2], np.float32)


def plate_photo_sample(rng: np.random.Generator, bgs: list[np.ndarray], size: int) -> Sample:
    """1-4 plates (12-110 px wide) on a crop of a real photograph."""
    bg = bgs[int(rng.integers(len(bgs)))]
    s = float(rng.uniform(0.4, 1.2))
    bg = cv2.resize(bg, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    if bg.shape[0] < size or bg.shape[1] < size:
        bg = cv2.resize(bg, (max(size, bg.shape[1]), max(size, bg.shape[0])))
    y0 = int(rng.integers(0, bg.shape[0] - size + 1))
    x0 = int(rng.integers(0, bg.shape[1] - size + 1))
    img = bg[y0 : y0 + size, x0 : x0 + size].copy()
    if rng.random() < 0.5:
        img = cv2.flip(img, 1)
    boxes = []
    for _ in range(int(rng.integers(1, 5))):
        w = int(np.exp(rng.uniform(np.log(12), np.log(110))))
        plate = render_plate(rng, w)
        plate = (plate.astype(np.float32) * rng.uniform(0.5, 1.1)).clip(0, 255).astype(np.uint8)
        cx = float(rng.uniform(w / 2, size - w / 2))
        cy = float(rng.uniform(plate.shape[0], size - plate.shape[0]))
        box = paste_warped(img, plate, cx, cy, rng)
        if all(_iou(box, b) < 0.05 for b in boxes):
            boxes.append(box)
    b = np.clip(np.array(boxes, np.float32), 0, size)
    return Sample(img, b, np.zeros(len(b), np.int64))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


# ------------------------------------------------------------------------------------- augmentation
def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation within +/-30%, Gaussian noise sigma 0-8, some blur."""
    x = img.astype(np.float32)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[:, :, 1] *= rng.uniform(0.6, 1.4)
        x = cv2.cvtColor(hsv.clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.7, 1.3)
    if rng.random() < 0.5:
        x += rng.normal(0, rng.uniform(0, 8), x.shape).astype(np.float32)
    out = x.clip(0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    return out


def make_set(n_fake: int, n_plates: int, seeds: range, seed: int, size: int = 256, augment: bool = True) -> list[Sample]:
    """Crops of fake frames (spread over ``seeds``) and plate-on-photo samples, shuffled."""
    from tools.eval.face_photos import backgrounds

    rng = np.random.default_rng(seed)
    samples: list[Sample] = []
    per_seed = max(1, n_fake // (3 * len(seeds)))
    for s in seeds:
        for img, boxes, labels in fake_frames(s, per_seed):
            for _ in range(3):
                samples.append(crop_sample(img, boxes, labels, rng, size, (0.4, 0.65)))
    bgs = backgrounds()
    samples += [plate_photo_sample(rng, bgs, size) for _ in range(n_plates)]
    if augment:
        for smp in samples:
            smp.image = photometric(smp.image, rng)
    order = rng.permutation(len(samples))
    return [samples[i] for i in order]
