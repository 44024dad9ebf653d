"""Real face photographs available offline, as labelled evaluation and calibration images.

Sources (all ship inside installed packages):

- scikit-image ``lfw_subset``: 100 face crops from Labeled Faces in the Wild (25 x 25, grey).
  Faces 0-49 are for calibration, 50-99 for evaluation. Each is pasted, upscaled, four to an
  image, onto a crop of a real photograph; its ground-truth box is the pasted square.
- Whole portraits: scikit-image ``astronaut`` (NASA, public domain), matplotlib ``grace_hopper``
  (US Navy, public domain), scikit-image ``camera`` (profile view, CC0), each at three scales,
  with face boxes chosen by eye (the same boxes as ``tools/models/make_face_assets.py``).
- Backgrounds: scikit-image photographs without people (coffee, chelsea, rocket, motorcycle,
  hubble, brick, grass, gravel, coins).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Labelled:
    name: str
    bgr: np.ndarray
    boxes: np.ndarray
    """(N, 4) float32 x1, y1, x2, y2 face boxes."""


PORTRAITS = {
    # name: (loader, face box x1, y1, x2, y2)
    "astronaut": ("skimage:astronaut", (181, 72, 271, 186)),
    "hopper": ("matplotlib:grace_hopper.jpg", (165, 128, 372, 345)),
    "camera": ("skimage:camera", (172, 98, 262, 206)),
}
PORTRAIT_SCALES = (1.0, 0.5, 0.3)
BACKGROUNDS = ("coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field", "brick", "grass", "gravel", "coins")


def _skimage(name: str) -> np.ndarray:
    """A photo from scikit-image's bundled data folder (file name without extension)."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    path = next(folder.glob(f"{name}.*"))
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return img


def _load(spec: str) -> np.ndarray:
    pkg, name = spec.split(":", 1)
    if pkg == "skimage":
        return _skimage(name)
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / name
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return img


def backgrounds() -> list[np.ndarray]:
    return [_skimage(n) for n in BACKGROUNDS]


def portraits() -> list[Labelled]:
    """Each portrait at each of :data:`PORTRAIT_SCALES`."""
    out = []
    for name, (spec, box) in PORTRAITS.items():
        img = _load(spec)
        for s in PORTRAIT_SCALES:
            scaled = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s != 1.0 else img
            out.append(Labelled(f"{name}@{s}", scaled, np.array([box], np.float32) * s))
    return out


def lfw_faces(indices: range) -> list[np.ndarray]:
    import skimage.data

    faces = skimage.data.lfw_subset()[:100]
    return [cv2.cvtColor((faces[i] * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR) for i in indices]


def lfw_mosaics(indices: range, seed: int, canvas: int = 256) -> list[Labelled]:
    """LFW faces four to an image on real backgrounds, face side 48-112 px, random placement."""
    rng = np.random.default_rng(seed)
    faces = lfw_faces(indices)
    bgs = backgrounds()
    out = []
    for k in range(0, len(faces), 4):
        bg = bgs[int(rng.integers(len(bgs)))]
        y0 = int(rng.integers(0, max(1, bg.shape[0] - canvas)))
        x0 = int(rng.integers(0, max(1, bg.shape[1] - canvas)))
        img = cv2.resize(bg[y0 : y0 + canvas, x0 : x0 + canvas], (canvas, canvas)).copy()
        boxes = []
        cell = canvas // 2
        for j, face in enumerate(faces[k : k + 4]):
            side = int(rng.integers(48, 113))
            cx, cy = (j % 2) * cell, (j // 2) * cell
            x = cx + int(rng.integers(0, cell - side + 1))
            y = cy + int(rng.integers(0, cell - side + 1))
            img[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
            boxes.append((x, y, x + side, y + side))
        out.append(Labelled(f"lfw{indices[k]}", img, np.array(boxes, np.float32)))
    return out


def evaluation_set() -> list[Labelled]:
    """Held-out real faces: LFW faces 50-99 in mosaics plus the three portraits at three scales."""
    return lfw_mosaics(range(50, 100), seed=1) + portraits()


def calibration_images(seed: int = 0) -> list[np.ndarray]:
    """Calibration images for quantisation: LFW faces 0-49 in mosaics, flipped copies, and the
    background photographs (no evaluation image is among them)."""
    mosaics = [m.bgr for m in lfw_mosaics(range(0, 50), seed=seed)]
    mosaics += [m.bgr for m in lfw_mosaics(range(0, 50), seed=seed + 1)]
    return mosaics + [cv2.flip(m, 1) for m in mosaics] + backgrounds()
