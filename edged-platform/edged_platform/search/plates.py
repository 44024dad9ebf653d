"""Plate text from a plate crop: PaddleOCR's PP-OCRv4 text-line recogniser (ONNX, CTC), on CPU.

The crop is read as one text line: height scaled to 48 px, width to keep the aspect (at most
:data:`MAX_WIDTH`), values to [-1, 1], BGR as the model was trained. Greedy CTC decoding over the
model's own character list (6,623 Chinese and Latin characters, digits and punctuation, kept in
the model's metadata). :func:`normalise` keeps letters, digits and CJK characters, upper-cased, so
``粤B·12345`` and ``粤B12345`` compare equal; queries also fold O into 0 and I into 1 (:func:`fold`).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edged_platform.search.models import model_path

HEIGHT = 48
MAX_WIDTH = 640
MIN_WIDTH = 48


@dataclass(frozen=True, slots=True)
class PlateRead:
    """What the recogniser read: normalised text and the mean character confidence (0 when empty)."""

    text: str
    confidence: float


FOLD = str.maketrans({"O": "0", "I": "1"})
"""Look-alike characters compared as one: plates print O and 0, I and 1 alike, and readers confuse them."""


def fold(text: str) -> str:
    """Normalised text with look-alike characters folded together (what queries compare)."""
    return normalise(text).translate(FOLD)


def normalise(text: str) -> str:
    """Plate text as compared: letters, digits and CJK characters only, upper-case."""
    out = []
    for ch in unicodedata.normalize("NFKC", text).upper():
        if ch.isalnum():
            out.append(ch)
    return "".join(out)


class PlateReader:
    """The PP-OCRv4 recogniser; :meth:`read` takes a BGR crop."""

    def __init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path("plate_rec")), opts, providers=["CPUExecutionProvider"])
        chars = self.session.get_modelmeta().custom_metadata_map["character"].splitlines()
        self.charset = ["", *chars, " "]  # CTC blank first, space last (the model's 6,625 classes)
        self.input = self.session.get_inputs()[0].name

    @staticmethod
    def prepare(crop: np.ndarray) -> np.ndarray:
        """``(1, 3, 48, W)`` float32 input for a BGR (or grey) crop."""
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        h, w = crop.shape[:2]
        width = int(min(MAX_WIDTH, max(MIN_WIDTH, math.ceil(HEIGHT * w / max(h, 1)))))
        img = cv2.resize(crop, (width, HEIGHT), interpolation=cv2.INTER_CUBIC if h < HEIGHT else cv2.INTER_AREA)
        x = (img.astype(np.float32) / 255.0 - 0.5) / 0.5
        return x.transpose(2, 0, 1)[None]

    def read(self, crop: np.ndarray) -> PlateRead:
        """Read one crop."""
        probs = self.session.run(None, {self.input: self.prepare(crop)})[0][0]
        best = probs.argmax(axis=1)
        text, confs, last = [], [], -1
        for t, k in enumerate(best):
            if k != last and k != 0:
                text.append(self.charset[k] if k < len(self.charset) else "")
                confs.append(float(probs[t, k]))
            last = k
        out = normalise("".join(text))
        return PlateRead(out, float(np.mean(confs)) if out and confs else 0.0)


@lru_cache(maxsize=1)
def reader() -> PlateReader:
    """The process's one plate reader (the model loads once, about 0.1 s)."""
    return PlateReader()


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Levenshtein distance between ``a`` and ``b`` (stops early once every path exceeds ``limit``)."""
    if len(a) < len(b):
        a, b = b, a
    if limit is not None and len(a) - len(b) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if limit is not None and min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]
