"""Face descriptors: dlib's 128-D ResNet embedding of a face crop, after its 5-point alignment.

The crop is taken as the face (the record's region around the face box): the landmark model finds
eyes and nose inside the given box, dlib aligns the face to 150 x 150 and the ResNet gives a 128-D
descriptor whose Euclidean distance is under about 0.6 for the same person (dlib's figure on LFW).
Crops smaller than :data:`MIN_SIDE` px are enlarged first (the landmarks need a few pixels per eye).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from edged_platform.search.models import model_path

MIN_SIDE = 80
"""Crops smaller than this are upscaled (bicubic) before landmarks and descriptor."""
SAME_PERSON = 0.6
"""Distance under which two descriptors are taken as the same person (dlib's own threshold)."""


class FaceDescriber:
    """dlib's landmark and descriptor models; :meth:`describe` takes a BGR face crop."""

    def __init__(self) -> None:
        import dlib

        self.dlib = dlib
        self.landmarks = dlib.shape_predictor(str(model_path("face_landmarks")))
        self.net = dlib.face_recognition_model_v1(str(model_path("face_descriptor")))
        self.detector = dlib.get_frontal_face_detector()

    def describe(self, crop: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The 128-D float32 descriptor of the face in ``crop`` (``box``: ``x1, y1, x2, y2`` of the
        face in the crop; default the whole crop)."""
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        h, w = crop.shape[:2]
        x1, y1, x2, y2 = box if box is not None else (0, 0, w, h)
        scale = max(1.0, MIN_SIDE / max(1, min(x2 - x1, y2 - y1)))
        if scale > 1.0:
            crop = cv2.resize(crop, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
            x1, y1, x2, y2 = (round(v * scale) for v in (x1, y1, x2, y2))
        rgb = np.ascontiguousarray(crop[:, :, ::-1])
        shape = self.landmarks(rgb, self.dlib.rectangle(int(x1), int(y1), int(x2) - 1, int(y2) - 1))
        return np.asarray(self.net.compute_face_descriptor(rgb, shape), dtype=np.float32)


@lru_cache(maxsize=1)
def describer() -> FaceDescriber:
    """The process's one face describer (raises :class:`edged_platform.search.models.ModelMissing`)."""
    return FaceDescriber()


def available() -> str | None:
    """``None`` when face descriptors can be computed, else why not (one line)."""
    try:
        import dlib  # noqa: F401
    except ImportError:
        return "dlib is not installed (pip install dlib-bin)"
    from edged_platform.search.models import ModelMissing

    try:
        model_path("face_landmarks")
        model_path("face_descriptor")
    except ModelMissing as err:
        return str(err)
    return None


def photo_descriptor(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The descriptor of the largest face dlib's HOG detector finds in a photo (the whole photo taken
    as the face when it finds none: a face crop), and that face's box (``None``: whole photo)."""
    d = describer()
    rgb = np.ascontiguousarray(image[:, :, ::-1]) if image.ndim == 3 else image
    found = list(d.detector(rgb, 1)) if min(image.shape[:2]) >= 40 else []
    if not found:
        return d.describe(image), None
    r = max(found, key=lambda r: r.width() * r.height())
    box = (max(0, r.left()), max(0, r.top()), min(image.shape[1], r.right() + 1), min(image.shape[0], r.bottom() + 1))
    return d.describe(image, box), box
