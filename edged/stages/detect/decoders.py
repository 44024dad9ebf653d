"""Turn raw model outputs into boxes in model-input pixels.

Every decoder returns a :class:`Raw` triple: ``boxes`` ``(N, 4)`` float32 ``x1, y1, x2, y2`` in
pixels of the model's input image, ``scores`` ``(N,)`` and ``labels`` ``(N,)`` (the model's own
class index). Decoders drop rows scoring below ``min_score`` and, for raw heads, run class-aware NMS.

Layouts:

- ``ssd``: TFLite_Detection_PostProcess, four outputs (boxes ``[ymin, xmin, ymax, xmax]``
  normalised, classes, scores, count); NMS already done inside the model.
- ``yolov5``: one ``(1, N, 5 + C)`` output: ``cx, cy, w, h, objectness, class scores``.
- ``yolov8``: one ``(1, 4 + C, N)`` output: ``cx, cy, w, h, class scores`` (no objectness).
  YOLO coordinates may be normalised (0-1) or in input pixels; both are accepted.
- ``yolo_grid``: raw anchor-free YOLO-style maps per stride, ``(1, H, W, 4 + C)`` or a box map
  ``(1, H, W, 4)`` plus a class-logit map ``(1, H, W, C)``, decoded here (edged-det, the
  project's own plate/vehicle/person model).
- ``centernet``: CenterNet heads at one stride, a class heatmap ``(1, H, W, C)`` (sigmoid scores)
  and box sides ``(1, H, W, 4)`` (distances left, top, right, bottom from the cell's corner point,
  in input pixels); peaks are the cells that are the maximum of their 3x3 neighbourhood.
- ``nanodet``: NanoDet's GFL heads, per stride a class-score map ``(1, H, W, C)`` (sigmoid) and a
  box map ``(1, H, W, 4 (R + 1))`` of logits over ``R + 1`` distance bins per side (left, top,
  right, bottom); a side's distance is the softmax expectation of its bin index times the stride,
  measured from the cell centre ``((gx + 0.5) s, (gy + 0.5) s)``.
- ``centerface``: CenterFace's four stride-4 maps, decoded in :mod:`edged.stages.detect.centerface`.
- ``db``: a text detector's probability map ``(1, H, W, 1)``, decoded in :mod:`edged.stages.detect.db`.
- ``blazeface``: MediaPipe BlazeFace, ``regressors (1, N, 16)`` and ``classificators (1, N, 1)``
  logits, decoded against SSD anchors generated from MediaPipe's anchor options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(slots=True)
class Raw:
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: np.ndarray) -> Raw:
        return Raw(self.boxes[keep], self.scores[keep], self.labels[keep])


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by class-aware non-maximum suppression (OpenCV's batched NMS), best first."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
    # OpenCV takes the arrays as they are; its stubs name sequences
    keep = cv2.dnn.NMSBoxesBatched(
        xywh, scores.astype(np.float32), labels.astype(np.int32), -1.0, float(iou)  # type: ignore[arg-type]
    )
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1).astype(np.float32)


def _to_pixels(xyxy: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """Scale normalised YOLO boxes to pixels; pixel boxes (any coordinate > 2) pass unchanged."""
    if len(xyxy) and float(np.abs(xyxy).max()) <= 2.0:
        return xyxy * np.array([input_wh[0], input_wh[1], input_wh[0], input_wh[1]], np.float32)
    return xyxy


# ------------------------------------------------------------------------------------------------ SSD
def ssd_output_order(names: list[str], shapes: list[tuple[int, ...]]) -> list[int]:
    """Indices of (boxes, classes, scores, count) among the four outputs.

    TFLite names the post-processing outputs ``<op>:0`` .. ``<op>:3`` (boxes, classes, scores,
    count; the first may lack ``:0``) but may list them in any order. When the names do not say,
    the box tensor is the one ending in 4, the count the one-element one, and classes come before
    scores in listing order.
    """
    suffixes = []
    for name in names:
        tail = name.rsplit(":", 1)[1] if ":" in name else "0"
        suffixes.append(int(tail) if tail.isdigit() else -1)
    if sorted(suffixes) == [0, 1, 2, 3]:
        return [suffixes.index(k) for k in range(4)]
    boxes = next(i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 4)
    count = next(i for i, s in enumerate(shapes) if i != boxes and int(np.prod(s)) == 1)
    rest = [i for i in range(4) if i not in (boxes, count)]
    return [boxes, rest[0], rest[1], count]


def decode_ssd(
    outputs: list[np.ndarray], input_wh: tuple[int, int], min_score: float, order: list[int] | None = None
) -> Raw:
    b, c, s, n = (outputs[i] for i in (order or [0, 1, 2, 3]))
    count = int(np.asarray(n).reshape(-1)[0])
    boxes = b.reshape(-1, 4)[:count]
    classes = c.reshape(-1)[:count]
    scores = s.reshape(-1)[:count].astype(np.float32)
    w, h = input_wh
    xyxy = np.stack([boxes[:, 1] * w, boxes[:, 0] * h, boxes[:, 3] * w, boxes[:, 2] * h], axis=1)
    raw = Raw(xyxy.astype(np.float32), scores, np.round(classes).astype(np.int32))
    return raw.select(raw.scores >= min_score)


# ----------------------------------------------------------------------------------------------- YOLO
def decode_yolov5(
    outputs: list[np.ndarray], input_wh: tuple[int, int], num_classes: int, min_score: float, iou: float
) -> Raw:
    out = outputs[0].reshape(-1, outputs[0].shape[-1])
    if out.shape[1] != 5 + num_classes:
        raise ValueError(f"yolov5 output has {out.shape[1]} values per row, expected {5 + num_classes}")
    cls = out[:, 5:] * out[:, 4:5]
    labels = cls.argmax(axis=1)
    scores = cls[np.arange(len(cls)), labels]
    return _finish_yolo(out[:, :4], scores, labels, input_wh, min_score, iou)


def decode_yolov8(
    outputs: list[np.ndarray], input_wh: tuple[int, int], num_classes: int, min_score: float, iou: float
) -> Raw:
    out: np.ndarray = outputs[0].reshape(outputs[0].shape[-2:])
    if out.shape[0] != 4 + num_classes:
        if out.shape[1] == 4 + num_classes:
            out = out.T  # some exports put anchors first
        else:
            raise ValueError(f"yolov8 output shape {outputs[0].shape} has no axis of size {4 + num_classes}")
    cls = out[4:].T
    labels = cls.argmax(axis=1)
    scores = cls[np.arange(len(cls)), labels]
    return _finish_yolo(out[:4].T, scores, labels, input_wh, min_score, iou)


def _finish_yolo(
    cxcywh: np.ndarray, scores: np.ndarray, labels: np.ndarray, input_wh: tuple[int, int], min_score: float, iou: float
) -> Raw:
    keep = scores >= min_score
    boxes = _to_pixels(_cxcywh_to_xyxy(cxcywh[keep]), input_wh)
    raw = Raw(boxes, scores[keep].astype(np.float32), labels[keep].astype(np.int32))
    return raw.select(nms(raw.boxes, raw.scores, raw.labels, iou))


# -------------------------------------------------------------------------------------- YOLO grid
GRID_BASE_PER_STRIDE = 5.0
"""``yolo_grid`` box sizes are ``5 * stride * (2 * sigmoid(t))**2`` (edged-det's convention)."""


def grid_levels(outputs: list[np.ndarray], num_classes: int) -> list[np.ndarray]:
    """``(H, W, 4 + C)`` maps, one per stride: a level is one ``4 + C`` tensor, or a ``4``-channel box
    tensor and a ``C``-channel class tensor of the same ``H, W`` (box first when C is 4)."""
    by_size: dict[tuple[int, int], list[np.ndarray]] = {}
    for out in outputs:
        by_size.setdefault(tuple(out.shape[-3:-1]), []).append(out.reshape(out.shape[-3:]))
    levels = []
    for size, parts in by_size.items():
        if len(parts) == 2 and parts[0].shape[-1] != 4 and parts[1].shape[-1] == 4:
            parts = parts[::-1]
        grid = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
        if grid.shape[-1] != 4 + num_classes or (len(parts) == 2 and parts[0].shape[-1] != 4) or len(parts) > 2:
            shapes = [p.shape for p in parts]
            raise ValueError(f"yolo_grid level {size} has outputs {shapes}; expected (H, W, {4 + num_classes}) "
                             f"or (H, W, 4) + (H, W, {num_classes})")
        levels.append(grid)
    return levels


def decode_yolo_grid(
    outputs: list[np.ndarray], input_wh: tuple[int, int], num_classes: int, min_score: float, iou: float
) -> Raw:
    """Raw anchor-free grid maps per stride (stride = input height / H), see :func:`grid_levels`.

    Cell ``(gx, gy)`` predicts ``cx = (gx + 2 sigmoid(tx) - 0.5) * stride`` (likewise ``cy``),
    ``w = 5 stride (2 sigmoid(tw))^2`` (likewise ``h``) and class scores ``sigmoid(logit)``. The
    decode runs here in float: inside an int8 model absolute coordinates would get 256 levels.
    """
    boxes, scores, labels = [], [], []
    for grid in grid_levels(outputs, num_classes):
        h, w, depth = grid.shape
        if depth != 4 + num_classes:
            raise ValueError(f"yolo_grid output {grid.shape} has {depth} channels, expected {4 + num_classes}")
        stride = input_wh[1] / h
        logits = grid[..., 4:].reshape(-1, num_classes)
        best = logits.argmax(axis=1)
        best_logit = logits[np.arange(len(best)), best]
        # threshold on logits first: sigmoid is monotonic, and most cells are background
        if 0.0 < min_score < 1.0:
            keep = best_logit >= np.log(min_score / (1.0 - min_score))
        else:
            keep = np.ones(len(best), bool)
        if not keep.any():
            continue
        idx = np.flatnonzero(keep)
        gy, gx = np.divmod(idx, w)
        t = 1.0 / (1.0 + np.exp(-grid[..., :4].reshape(-1, 4)[idx]))
        cx = (gx + 2.0 * t[:, 0] - 0.5) * stride
        cy = (gy + 2.0 * t[:, 1] - 0.5) * stride
        bw = GRID_BASE_PER_STRIDE * stride * (2.0 * t[:, 2]) ** 2
        bh = GRID_BASE_PER_STRIDE * stride * (2.0 * t[:, 3]) ** 2
        boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1))
        scores.append(1.0 / (1.0 + np.exp(-best_logit[idx])))
        labels.append(best[idx])
    if not boxes:
        return Raw()
    raw = Raw(np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32),
              np.concatenate(labels).astype(np.int32))
    return raw.select(nms(raw.boxes, raw.scores, raw.labels, iou))


# ------------------------------------------------------------------------------------------ CenterNet
def centernet_maps(outputs: list[np.ndarray], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(H, W, C)`` heatmap and ``(H, W, 4)`` box-side map, told apart by channel count."""
    maps: list[np.ndarray] = [o.reshape(o.shape[-3:]) for o in outputs]
    if len(maps) != 2 or num_classes == 4:
        raise ValueError(
            f"centernet needs two outputs (heatmap, sides) and != 4 classes, got {[m.shape for m in maps]}"
        )
    heat, sides = maps if maps[1].shape[-1] == 4 else maps[::-1]
    if heat.shape[-1] != num_classes or sides.shape[-1] != 4 or heat.shape[:2] != sides.shape[:2]:
        raise ValueError(f"centernet outputs {[m.shape for m in maps]}: expected (H, W, {num_classes}) and (H, W, 4)")
    return heat, sides


def local_peaks(heat: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, class) of the cells scoring at least ``min_score`` that are the maximum of their
    3x3 neighbourhood in their class (CenterNet's max-pool "NMS")."""
    rows, cols, cls = np.nonzero(heat >= min_score)
    if len(rows) == 0:
        return rows, cols, cls
    padded = np.pad(heat, ((1, 1), (1, 1), (0, 0)), constant_values=-1.0)
    score = heat[rows, cols, cls]
    peak = np.ones(len(rows), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                peak &= score >= padded[rows + dy, cols + dx, cls]
    return rows[peak], cols[peak], cls[peak]


def decode_centernet(
    outputs: list[np.ndarray], input_wh: tuple[int, int], num_classes: int, min_score: float, iou: float
) -> Raw:
    """Peaks of the class heatmap; a peak at cell ``(gx, gy)`` of stride ``s`` is the box
    ``(s gx - left, s gy - top, s gx + right, s gy + bottom)``."""
    heat, sides = centernet_maps(outputs, num_classes)
    stride = input_wh[1] / heat.shape[0]
    rows, cols, cls = local_peaks(heat, min_score)
    if len(rows) == 0:
        return Raw()
    d = sides[rows, cols]
    cx, cy = cols * stride, rows * stride
    boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1).astype(np.float32)
    raw = Raw(boxes, heat[rows, cols, cls].astype(np.float32), cls.astype(np.int32))
    return raw.select(nms(raw.boxes, raw.scores, raw.labels, iou))


# -------------------------------------------------------------------------------------------- NanoDet
def nanodet_levels(outputs: list[np.ndarray], num_classes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(scores (H, W, C), bins (H, W, 4 (R + 1)))`` per stride, finest first, paired by map size."""
    by_size: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for out in outputs:
        m: np.ndarray = out.reshape(out.shape[-3:])
        kind = "cls" if m.shape[-1] == num_classes else "box"
        by_size.setdefault(m.shape[:2], {})[kind] = m
    levels = []
    for size in sorted(by_size, key=lambda hw: -hw[0]):
        pair = by_size[size]
        if set(pair) != {"cls", "box"} or pair["box"].shape[-1] % 4:
            raise ValueError(f"nanodet level {size}: expected a ({num_classes})-channel score map and a "
                             f"4 x bins box map, got {[m.shape for m in pair.values()]}")
        levels.append((pair["cls"], pair["box"]))
    return levels


def decode_nanodet(
    outputs: list[np.ndarray], input_wh: tuple[int, int], num_classes: int, min_score: float, iou: float
) -> Raw:
    """GFL decode of every level (stride = input height / H); class-aware NMS over all levels."""
    boxes, scores, labels = [], [], []
    for cls, box in nanodet_levels(outputs, num_classes):
        gh, gw = cls.shape[:2]
        stride = input_wh[1] / gh
        best = cls.max(axis=-1)
        ys, xs = np.nonzero(best >= min_score)
        if len(ys) == 0:
            continue
        bins = box[ys, xs].reshape(len(ys), 4, -1).astype(np.float32)
        bins = np.exp(bins - bins.max(axis=-1, keepdims=True))
        dist = (bins * np.arange(bins.shape[-1], dtype=np.float32)).sum(-1) / bins.sum(-1) * stride
        cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
        boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1))
        scores.append(best[ys, xs])
        labels.append(cls[ys, xs].argmax(axis=-1))
    if not boxes:
        return Raw()
    raw = Raw(np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32),
              np.concatenate(labels).astype(np.int32))
    return raw.select(nms(raw.boxes, raw.scores, raw.labels, iou))


# ------------------------------------------------------------------------------------------ BlazeFace
@dataclass(frozen=True, slots=True)
class AnchorOptions:
    """MediaPipe SsdAnchorsCalculator options for the BlazeFace models (fixed anchor size)."""

    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float = 1.0
    """1.0 adds a second anchor per layer (so 2 per layer); 0.0 gives one per layer."""


BLAZEFACE_ANCHORS: dict[str, AnchorOptions] = {
    "short_range": AnchorOptions(128, (8, 16, 16, 16)),
    "full_range": AnchorOptions(192, (4,), 0.0),
    "back": AnchorOptions(256, (16, 32, 32, 32)),
}
"""The three BlazeFace variants MediaPipe ships: front/short range (128 px, 896 anchors), full range
(192 px, 2304 anchors), back camera (256 px, 896 anchors)."""


def blazeface_anchors(opts: AnchorOptions) -> np.ndarray:
    """``(N, 2)`` anchor centres ``(x, y)`` normalised to 0-1, in MediaPipe's order.

    Consecutive layers with the same stride share one feature map; each layer contributes one
    anchor per cell (aspect ratio 1) plus one when ``interpolated_scale_aspect_ratio`` is set.
    """
    per_layer = 2 if opts.interpolated_scale_aspect_ratio > 0 else 1
    centres = []
    i = 0
    while i < len(opts.strides):
        stride = opts.strides[i]
        j = i
        while j < len(opts.strides) and opts.strides[j] == stride:
            j += 1
        repeat = per_layer * (j - i)
        cells = int(np.ceil(opts.input_size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeat, axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


def blazeface_variant(input_size: int, num_anchors: int) -> AnchorOptions:
    """The anchor options whose input size and anchor count match the model; ``ValueError`` if none."""
    for opts in BLAZEFACE_ANCHORS.values():
        if opts.input_size == input_size and len(blazeface_anchors(opts)) == num_anchors:
            return opts
    known = ", ".join(
        f"{k} ({o.input_size} px, {len(blazeface_anchors(o))} anchors)" for k, o in BLAZEFACE_ANCHORS.items()
    )
    raise ValueError(f"no BlazeFace anchor set for input {input_size} px with {num_anchors} anchors; known: {known}")


def decode_blazeface(
    outputs: list[np.ndarray], anchors: np.ndarray, input_wh: tuple[int, int], min_score: float, iou: float
) -> Raw:
    """Decode BlazeFace: boxes are offsets from anchor centres in input pixels, scores are logits."""
    reg, logits = (outputs[0], outputs[1]) if outputs[0].shape[-1] != 1 else (outputs[1], outputs[0])
    reg = reg.reshape(-1, reg.shape[-1])
    logits = np.clip(logits.reshape(-1), -80.0, 80.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = scores >= min_score
    w, h = input_wh
    a = anchors[keep]
    r = reg[keep, :4]
    cx = r[:, 0] / w + a[:, 0]
    cy = r[:, 1] / h + a[:, 1]
    bw = r[:, 2] / w
    bh = r[:, 3] / h
    boxes = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], axis=1)
    raw = Raw(boxes.astype(np.float32), scores[keep].astype(np.float32), np.zeros(int(keep.sum()), np.int32))
    return raw.select(nms(raw.boxes, raw.scores, raw.labels, iou))
