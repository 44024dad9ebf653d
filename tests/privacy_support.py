"""Shared material for the privacy tests: real photos, fake-scene frames, frame metadata, keys."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from edged.core.classes import class_id
from edged.core.keys import PrivacyKeys
from edged.core.types import Exposure, ExposureMode, FrameMeta, Position, TrackedObjects

FACE, PLATE, CAR = class_id("face"), class_id("plate"), class_id("car")
VIDEO_ID = "01JAAAAAAAAAAAAAAAAAAAAAAA"


def meta(i: int, width: int = 0, height: int = 0, video_id: str = VIDEO_ID) -> FrameMeta:
    """Frame metadata with a valid, time-ordered image id for frame ``i``."""
    return FrameMeta(
        image_id=f"01JBBBBBBBBBBBBBBBBB{i:06d}",
        frame_index=i,
        video_id=video_id,
        timestamp=1_700_000_000.0 + i / 10,
        exposure=Exposure(ExposureMode.MANUAL, 2000.0, 1.0),
        position=Position(48.1, 11.5, 520.0),
        width=width,
        height=height,
    )


def tracked(boxes, class_ids, track_ids, detected=None) -> TrackedObjects:
    n = len(boxes)
    return TrackedObjects(
        track_ids=np.asarray(track_ids, dtype=np.int64),
        class_ids=np.asarray(class_ids, dtype=np.int16),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(n, 4),
        scores=np.full(n, 0.9, dtype=np.float32),
        angles=np.zeros(n, dtype=np.float32),
        detected=np.ones(n, dtype=bool) if detected is None else np.asarray(detected, dtype=bool),
    )


@dataclass(frozen=True)
class Photo:
    name: str
    pixels: np.ndarray
    tracks: TrackedObjects


@lru_cache(maxsize=1)
def photos() -> tuple[Photo, ...]:
    """Real photographs (scikit-image data, BGR) with sensitive regions: a real face where there is
    one (astronaut), elsewhere textured areas labelled face/plate (restore exactness needs texture,
    not a real face)."""
    from skimage import data

    astro = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    coffee = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    return (
        Photo("astronaut", astro, tracked([[181, 72, 271, 186], [380, 420, 470, 450]], [FACE, PLATE], [11, 12])),
        Photo("coffee", coffee, tracked([[100, 100, 220, 200], [400, 250, 590, 300], [-30, 350, 40, 420]], [FACE, PLATE, FACE], [21, 22, 23])),
        Photo("camera", camera, tracked([[190, 80, 270, 190]], [FACE], [31], detected=[False])),
    )


@lru_cache(maxsize=2)
def scene_frames(n: int = 40, width: int = 640, height: int = 360, seed: int = 3) -> tuple:
    """``n`` frames of the fake scene with their ground truth (no scripted events)."""
    from edged_sim.camera import FakeCamera

    cam = FakeCamera(width=width, height=height, fps=10.0, seed=seed, events=False, people_per_minute=60.0, cars_per_minute=40.0, t0=1_700_000_000.0)
    cam.start()
    out = []
    for _ in range(n):
        cap = cam.capture()
        out.append((cap.pixels, cap.ground_truth))
    return tuple(out)


def gt_tracks(gt) -> TrackedObjects:
    """Ground-truth faces and plates as tracks (object id as track id)."""
    keep = np.isin(gt.class_ids, [FACE, PLATE])
    return tracked(gt.boxes[keep], gt.class_ids[keep], gt.object_ids[keep])


@lru_cache(maxsize=1)
def key_material() -> tuple[SigningKey, PrivateKey, PrivateKey]:
    """(device signing key, face platform key, plate platform key)."""
    return SigningKey.generate(), PrivateKey.generate(), PrivateKey.generate()


def privacy_keys() -> PrivacyKeys:
    device, face, plate = key_material()
    return PrivacyKeys(device, {"face": face.public_key, "plate": plate.public_key})


def noisy_detections(gt, rng: np.random.Generator, miss: float = 0.15, jitter: float = 0.04):
    """Ground-truth faces and plates as a detector would report them: boxes jittered by ``jitter`` of
    their size, scores 0.5-0.95, and each object missed with probability ``miss`` (the tracker then
    predicts it)."""
    from edged.core.types import Detections

    keep = np.isin(gt.class_ids, [FACE, PLATE]) & (rng.random(len(gt)) >= miss)
    boxes = gt.boxes[keep].astype(np.float32)
    wh = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    boxes = boxes + (rng.normal(0, jitter, boxes.shape) * wh).astype(np.float32)
    n = len(boxes)
    return Detections(boxes, rng.uniform(0.5, 0.95, n).astype(np.float32), gt.class_ids[keep].astype(np.int16),
                      np.zeros(n, np.float32))
