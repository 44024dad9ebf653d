"""The detection stage: every configured model on each frame, boxes in frame pixels.

``Detector.from_config(cfg.detect)`` loads and checks every model (raising :class:`ModelError`
naming the file and the mismatch), then ``detect(pixels_bgr)`` returns one :class:`Detections`
with edged class ids. Each model sees the frame letterboxed (or stretched) to its input; with
tiling on, the tiled models also see overlapping tiles; a model with ``crops_from`` also sees a
crop around each detection of those classes from the models before it (``crop_shape``: a square
over a person's head for the face model, the whole box of a vehicle for the plate model), and
with ``full_frame`` off sees only those crops (and tiles).
A model's boxes from all its regions are merged by class-aware NMS.

The regions' invocations run on ``detect.threads`` worker threads, each with its own single-threaded
copy of every model: models that need nothing from each other (the object model and a whole-frame
face model) run side by side, and so do a model's crops and scan windows. A model that reads
earlier models' boxes (``crops_from``, ``scan.explained_by``) waits only for the models that detect
those classes. The result is the same as running everything in order on one thread.
"""

from __future__ import annotations

import queue
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar

import cv2
import numpy as np

from edged.config import DetectConfig, ModelConfig, TilingConfig
from edged.core.classes import CLASS_NAMES
from edged.core.geometry import iou_matrix
from edged.core.paths import model_file
from edged.core.types import Detections
from edged.stages.detect import decoders
from edged.stages.detect.centerface import centerface_order, decode_centerface
from edged.stages.detect.db import check_db_output, decode_db
from edged.stages.detect.runtime import ModelError, TFLiteModel
from edged.stages.detect.scan import CELL_PX, FrameChange, ScanPlanner, Window, zoom_windows, zoomed

_DEFAULT_RANGE = {"blazeface": (-1.0, 1.0), "ssd": (-1.0, 1.0), "yolov5": (0.0, 1.0), "yolov8": (0.0, 1.0),
                  "yolo_grid": (0.0, 1.0), "centernet": (0.0, 255.0), "centerface": (0.0, 255.0),
                  "nanodet": (0.0, 255.0), "db": (0.0, 255.0)}
"""Float input range each layout is usually trained on (pixels / 255 mapped linearly into it)."""
RESIZABLE_LAYOUTS = frozenset({"centerface"})
"""Fully convolutional layouts whose files run at any input size (multiples of 32) the config names."""
_EXPECTED_OUTPUTS = {"ssd": 4, "yolov5": 1, "yolov8": 1, "blazeface": 2, "centernet": 2, "centerface": 4,
                     "db": 1}


def model_path(file: str) -> Path:
    """A config ``file`` as :func:`edged.core.paths.model_file` finds it (a config loaded from a file
    has its files in the config's folder made absolute already)."""
    return model_file(file)


def check_model_names(cfg: DetectConfig) -> None:
    """Model names are unique and ``tiling.models`` names only them; else :class:`ModelError`."""
    names = [m.name for m in cfg.models]
    if len(set(names)) != len(names):
        raise ModelError(f"detect.models: duplicate model names in {names}")
    unknown = [n for n in cfg.tiling.models if n not in names]
    if unknown:
        raise ModelError(f"detect.tiling.models names {unknown[0]!r}, not a configured model ({', '.join(names)})")


def check_crop_sources(models: list[LoadedModel]) -> None:
    """Each model's ``crops_from`` classes come from models listed before it; else :class:`ModelError`."""
    for i, m in enumerate(models):
        earlier = {CLASS_NAMES[c] for e in models[:i] for c in e.class_map if c >= 0}
        missing = [c for c in m.cfg.crops_from if c not in earlier]
        if missing:
            raise ModelError(
                f"model {m.cfg.name!r}: crops_from {missing[0]!r}, which no model listed before it detects"
            )


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle of the frame (pixels) that one model invocation sees."""

    x: int
    y: int
    w: int
    h: int


def tile_regions(width: int, height: int, tiling: TilingConfig) -> list[Region]:
    """The whole frame followed by overlapping tiles covering it (no tiles if a tile covers the frame)."""
    regions = [Region(0, 0, width, height)]
    tw, th = min(tiling.tile[0], width), min(tiling.tile[1], height)
    if tw >= width and th >= height:
        return regions
    xs, ys = tiling.origins(width, height)
    regions += [Region(x, y, tw, th) for y in ys for x in xs]
    return regions


def fit_size(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """Resize ``image`` to ``size`` (w, h) for a model input, anti-aliased when shrinking.

    Halves with a 2x2 box filter while the image is still at least twice the target, then
    resizes bilinearly (a ratio below 2, or an enlargement). Close to ``INTER_AREA`` (about 1 grey
    level mean difference on photographs) at a fraction of its cost at non-integer ratios: a
    300 px head crop to 128 px takes 0.06 ms instead of 0.42 ms (2-core EPYC, one OpenCV thread);
    an exact 2x (1280x720 -> 640x360) is ``INTER_AREA`` itself.

    Returns (resized, used_w, used_h): the result shows the first ``used_w`` x ``used_h`` pixels
    of ``image``; up to 2^k - 1 right/bottom pixels are left out so that k halvings are exact.
    """
    w, h = size
    ih, iw = image.shape[:2]
    k = 0
    while iw >> (k + 1) >= w and ih >> (k + 1) >= h:
        k += 1
    used_w, used_h = (iw >> k) << k, (ih >> k) << k
    img = image[:used_h, :used_w]
    for _ in range(k):
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if img.shape[1] != w or img.shape[0] != h:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return img, used_w, used_h


def letterbox(image: np.ndarray, size: tuple[int, int], pad: int = 0) -> tuple[np.ndarray, float, float, int, int]:
    """Resize keeping the aspect ratio and centre in a ``size`` (w, h) canvas filled with ``pad``.

    Returns (canvas, sx, sy, pad_x, pad_y): a canvas pixel ``u`` is ``(u - pad_x) / sx`` in ``image``.
    """
    w, h = size
    ih, iw = image.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    px, py = (w - nw) // 2, (h - nh) // 2
    img = np.full((h, w, 3), pad, np.uint8)
    img[py : py + nh, px : px + nw], used_w, used_h = fit_size(image, (nw, nh))
    return img, nw / used_w, nh / used_h, px, py


_P = ParamSpec("_P")
_T = TypeVar("_T")


class InlineExecutor(Executor):
    """Runs each submitted call at once on the caller's thread (``detect.threads = 1``)."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        done: Future[_T] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as err:  # handed to whoever reads the result, as a pool would
            done.set_exception(err)
        return done


class LoadedModel:
    """One model from the config: interpreters, decoder settings and label -> class-id map.

    ``copies`` single-threaded interpreters of the file, so that as many regions run at once.
    """

    def __init__(self, cfg: ModelConfig, copies: int = 1) -> None:
        self.cfg = cfg
        self.path = model_path(cfg.file)
        self.model = TFLiteModel(self.path, 1)
        self.input_range = cfg.input_range or _DEFAULT_RANGE[cfg.layout]
        self.class_map = self._class_map()
        self.thresholds = self._thresholds()
        self.min_score = float(min(self.thresholds[self.class_map >= 0].min(initial=1.0), 1.0))
        self.class_thresholds = np.ones(int(self.class_map.max(initial=0)) + 1, np.float32)
        """Score threshold per class id this model outputs (1 for the others)."""
        self.class_thresholds[self.class_map[self.class_map >= 0]] = self.thresholds[self.class_map >= 0]
        self.crop_class_ids = self._class_ids(cfg.crops_from, "crops_from")
        self.anchors: np.ndarray | None = None
        self.ssd_order: list[int] | None = None
        self.centerface_order: list[int] | None = None
        self._check()
        w, h = self.model.input_size
        scale = cfg.scan.scale
        zoom = cfg.scan.zoom_scale if cfg.scan.enabled else 0.0
        self.zoom_window = (round(w / zoom), round(h / zoom)) if zoom > 0 else None
        """The scan's second-look window in frame pixels (``None``: no second looks)."""
        self.scan = ScanPlanner(cfg.scan, (round(w / scale), round(h / scale)),
                                zoom_window=self.zoom_window) if cfg.scan.enabled else None
        self.window_floor = min(cfg.scan.zoom_min_score, self.min_score) if zoom > 0 else None
        """Least score a scan window reports (its weak boxes get a second look), else the thresholds."""
        explained_by = cfg.scan.explained_by if cfg.scan.enabled else []
        self.scan_explained_ids = self._class_ids(explained_by, "scan.explained_by")
        self.still_crops: list[tuple[Region, Detections, int]] = []
        """Last frame's crops: region, what was found in it, for how many frames in a row reused."""
        self.copies = [self.model, *(self._copy() for _ in range(copies - 1))]
        """Every interpreter of the file (``model`` first)."""
        self._free: queue.SimpleQueue[TFLiteModel] = queue.SimpleQueue()
        """Interpreters no region is running on."""
        for copy in self.copies:
            self._free.put(copy)

    def _copy(self) -> TFLiteModel:
        """Another interpreter of the file, at the input size the config gave the first."""
        copy = TFLiteModel(self.path, 1)
        if copy.input_size != self.model.input_size:
            copy.resize_input(*self.model.input_size)
        return copy

    @contextmanager
    def interpreter(self) -> Iterator[TFLiteModel]:
        """An interpreter no other thread is running, for the duration of the block."""
        model = self._free.get()
        try:
            yield model
        finally:
            self._free.put(model)

    def _class_ids(self, names: list[str], key: str) -> np.ndarray:
        """Class ids of the edged class ``names`` a config ``key`` lists; :class:`ModelError` on an unknown one."""
        unknown = [c for c in names if c not in CLASS_NAMES]
        if unknown:
            raise self._fail(f"{key} names {unknown[0]!r}, not an edged class ({', '.join(CLASS_NAMES)})")
        return np.asarray([CLASS_NAMES.index(c) for c in names], np.int16)

    def _fail(self, what: str) -> ModelError:
        return ModelError(f"model {self.cfg.name!r} ({self.path}): {what}")

    def _class_map(self) -> np.ndarray:
        ids = []
        for label in self.cfg.labels:
            if label == "":
                ids.append(-1)
            elif label in CLASS_NAMES:
                ids.append(CLASS_NAMES.index(label))
            else:
                raise self._fail(f"label {label!r} is not an edged class; known: {', '.join(CLASS_NAMES)}")
        return np.asarray(ids, dtype=np.int16)

    def _thresholds(self) -> np.ndarray:
        """Score threshold per model label index."""
        known = {CLASS_NAMES[c] for c in self.class_map if c >= 0}
        for name in self.cfg.thresholds:
            if name not in known:
                raise self._fail(
                    f"threshold for {name!r}, which this model does not output ({', '.join(sorted(known))})"
                )
        default = self.cfg.score_threshold
        return np.asarray(
            [self.cfg.thresholds.get(CLASS_NAMES[c], default) if c >= 0 else 1.0 for c in self.class_map],
            dtype=np.float32,
        )

    def _check(self) -> None:
        """Compare the file with its config: input size, output count and output shapes."""
        cfg, m = self.cfg, self.model
        if tuple(cfg.input_size) != m.input_size:
            if cfg.layout not in RESIZABLE_LAYOUTS:
                raise self._fail(
                    f"config input_size {tuple(cfg.input_size)} (w, h) but the file's input is {m.input_size}"
                )
            m.resize_input(*cfg.input_size)
        want = _EXPECTED_OUTPUTS.get(cfg.layout, len(m.outputs))
        shapes = [o.shape for o in m.outputs]
        if len(m.outputs) != want:
            raise self._fail(
                f"layout {cfg.layout!r} needs {want} output tensors, the file has {len(m.outputs)} {shapes}"
            )
        by_layout = {
            "yolov5": self._check_yolov5, "yolov8": self._check_yolov8, "yolo_grid": self._check_yolo_grid,
            "centernet": self._check_centernet, "nanodet": self._check_nanodet,
            "centerface": self._check_centerface, "blazeface": self._check_blazeface, "ssd": self._check_ssd,
            "db": self._check_db,
        }
        check = by_layout.get(cfg.layout)
        if check is not None:
            check(shapes, len(cfg.labels))

    def _check_yolov5(self, shapes: list[tuple[int, ...]], n: int) -> None:
        if shapes[0][-1] != 5 + n:
            raise self._fail(f"yolov5 output {shapes[0]} does not end in 5 + {n} labels = {5 + n}")

    def _check_yolov8(self, shapes: list[tuple[int, ...]], n: int) -> None:
        if 4 + n not in shapes[0][-2:]:
            raise self._fail(f"yolov8 output {shapes[0]} has no axis of 4 + {n} labels = {4 + n}")

    def _check_yolo_grid(self, shapes: list[tuple[int, ...]], n: int) -> None:
        w, h = self.model.input_size
        for s in shapes:
            if len(s) != 4 or h % s[1] or w % s[2] or h // s[1] != w // s[2]:
                raise self._fail(
                    f"yolo_grid output {s} is not (1, H, W, channels) with H, W dividing {self.model.input_size}"
                )
        try:
            decoders.grid_levels([np.zeros(s, np.float32) for s in shapes], n)
        except ValueError as err:
            raise self._fail(f"{err} ({n} labels)") from None

    def _check_centernet(self, shapes: list[tuple[int, ...]], n: int) -> None:
        try:
            heat, _ = decoders.centernet_maps([np.zeros(s, np.float32) for s in shapes], n)
        except ValueError as err:
            raise self._fail(f"{err} ({n} labels)") from None
        w, h = self.model.input_size
        if h % heat.shape[0] or w % heat.shape[1] or h // heat.shape[0] != w // heat.shape[1]:
            raise self._fail(f"centernet maps {heat.shape[:2]} do not divide the input {self.model.input_size} evenly")

    def _check_nanodet(self, shapes: list[tuple[int, ...]], n: int) -> None:
        try:
            decoders.nanodet_levels([np.zeros(s, np.float32) for s in shapes], n)
        except ValueError as err:
            raise self._fail(f"{err} ({n} labels)") from None

    def _check_centerface(self, shapes: list[tuple[int, ...]], n: int) -> None:
        try:
            self.centerface_order = centerface_order([o.name for o in self.model.outputs], shapes)
        except ValueError as err:
            raise self._fail(str(err)) from None
        if n != 1:
            raise self._fail(f"centerface has one class, config lists {n} labels")

    def _check_blazeface(self, shapes: list[tuple[int, ...]], n: int) -> None:
        size = self.model.input_size
        reg = next((s for s in shapes if s[-1] != 1), None)
        if reg is None or reg[-1] < 4 or len(reg) != 3:
            raise self._fail(f"blazeface outputs {shapes}: expected (1, N, 16) regressors and (1, N, 1) scores")
        if size[0] != size[1]:
            raise self._fail(f"blazeface input must be square, file has {size}")
        try:
            opts = decoders.blazeface_variant(size[0], reg[1])
        except ValueError as err:
            raise self._fail(str(err)) from None
        self.anchors = decoders.blazeface_anchors(opts)
        if n != 1:
            raise self._fail(f"blazeface has one class, config lists {n} labels")

    def _check_ssd(self, shapes: list[tuple[int, ...]], n: int) -> None:
        if not any(len(s) == 3 and s[-1] == 4 for s in shapes):
            raise self._fail(f"ssd outputs {shapes} have no (1, N, 4) box tensor (TFLite_Detection_PostProcess)")
        self.ssd_order = decoders.ssd_output_order([o.name for o in self.model.outputs], shapes)

    def _check_db(self, shapes: list[tuple[int, ...]], n: int) -> None:
        if n != 1:
            raise self._fail(f"db has one class, config lists {n} labels")
        try:
            check_db_output(shapes[0], self.model.input_size)
        except ValueError as e:
            raise self._fail(str(e)) from None

    # ------------------------------------------------------------------------------------------ run
    def prepare(self, bgr: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
        """As :meth:`prepare_pixels`, with the image as float32 in the model's input range."""
        img, sx, sy, px, py = self.prepare_pixels(bgr)
        lo, hi = self.input_range
        return img.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo), sx, sy, px, py

    def prepare_pixels(self, bgr: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
        """Fit a BGR image into the model input; returns (uint8 RGB input, sx, sy, pad_x, pad_y).

        A model pixel ``u`` maps back to ``(u - pad_x) / sx`` in ``bgr``. The colour order is swapped
        after resizing (the same pixels either way, on the model's few pixels instead of the frame's).
        """
        w, h = self.model.input_size
        if self.cfg.resize == "stretch":
            img, used_w, used_h = fit_size(bgr, (w, h))
            sx, sy, px, py = w / used_w, h / used_h, 0, 0
        else:
            pad = 114 if self.cfg.layout.startswith("yolo") else 0  # YOLO trains on grey padding
            img, sx, sy, px, py = letterbox(bgr, (w, h), pad)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), sx, sy, px, py

    def decode(self, outputs: list[np.ndarray], min_score: float | None = None) -> decoders.Raw:
        """Boxes in model pixels scoring at least ``min_score`` (default: the lowest threshold)."""
        cfg, wh = self.cfg, self.model.input_size
        least = self.min_score if min_score is None else min_score
        if cfg.layout == "ssd":
            return decoders.decode_ssd(outputs, wh, least, self.ssd_order)
        if cfg.layout == "yolov5":
            return decoders.decode_yolov5(outputs, wh, len(cfg.labels), least, cfg.nms_iou)
        if cfg.layout == "yolov8":
            return decoders.decode_yolov8(outputs, wh, len(cfg.labels), least, cfg.nms_iou)
        if cfg.layout == "yolo_grid":
            return decoders.decode_yolo_grid(outputs, wh, len(cfg.labels), least, cfg.nms_iou)
        if cfg.layout == "centernet":
            return decoders.decode_centernet(outputs, wh, len(cfg.labels), least, cfg.nms_iou)
        if cfg.layout == "nanodet":
            return decoders.decode_nanodet(outputs, wh, len(cfg.labels), least, cfg.nms_iou)
        if cfg.layout == "centerface":
            return decode_centerface(outputs, wh, least, cfg.nms_iou, self.centerface_order)
        if cfg.layout == "db":
            return decode_db(outputs, wh, least, cfg.nms_iou)
        assert self.anchors is not None
        return decoders.decode_blazeface(outputs, self.anchors, wh, least, cfg.nms_iou)

    def detect_crops(self, crops: list[Region], change: FrameChange,
                     start: Callable[[Region], Future[Detections]]) -> Callable[[], list[Detections]]:
        """Start the crops (``start`` runs :meth:`detect_crop` on one); returns the call that waits for
        what each crop found.

        A crop whose pixels have not changed since the last frame (no 8 x 8 cell moved by more than
        :data:`STILL_LEVELS`), at about the same place, takes the last frame's result instead, at
        most ``reuse_still_crops`` frames in a row. With ``carry_crops``, a crop overlapping one of
        the last frame's by at least :data:`CARRY_IOU` (the same vehicle, moved) takes that result
        moved and scaled with the crop, at most ``carry_crops`` frames in a row.
        """
        still_limit, carry_limit = self.cfg.reuse_still_crops, self.cfg.carry_crops
        planned: list[tuple[Region, Detections | Future[Detections], int]] = []
        for r in crops:
            reused = None
            for prev, found, age in self.still_crops if still_limit else ():
                if age < still_limit and same_place(prev, r) and change.still(
                        min(prev.x, r.x), min(prev.y, r.y), max(prev.x + prev.w, r.x + r.w) - min(prev.x, r.x),
                        max(prev.y + prev.h, r.y + r.h) - min(prev.y, r.y), STILL_LEVELS):
                    reused = (prev, found, age + 1)
                    break
            if reused is None and carry_limit:
                reused = carried_crop(self.still_crops, r, carry_limit)
            planned.append(reused or (r, start(r), 0))

        def finish() -> list[Detections]:
            self.still_crops = [(r, found.result() if isinstance(found, Future) else found, age)
                                for r, found, age in planned]
            return [found for _, found, _ in self.still_crops]

        return finish

    def detect_crop(self, bgr: np.ndarray, region: Region) -> Detections:
        """:meth:`detect_region` less the boxes too large for the crop (``max_crop_fraction``)."""
        return fits_crop(self.detect_region(bgr, region), region, self.cfg.max_crop_fraction)

    def detect_window(self, bgr: np.ndarray, region: Region) -> Detections:
        """:meth:`detect_crop` for a scan window: with second looks, also the boxes down to ``zoom_min_score``."""
        return fits_crop(self.detect_region(bgr, region, self.window_floor), region, self.cfg.max_crop_fraction)

    def weak(self, found: Detections) -> np.ndarray:
        """Per box, whether it scores below its class's threshold (a scan window's box for a second look)."""
        return np.asarray(found.scores < self.class_thresholds[found.class_ids])

    def window_nms(self, found: Detections) -> Detections:
        """One box per object among detections from overlapping regions (class-aware NMS)."""
        if len(found) < 2:
            return found
        return found.select(decoders.nms(found.boxes, found.scores, found.class_ids, self.cfg.nms_iou))

    def detect_region(self, bgr: np.ndarray, region: Region, floor: float | None = None) -> Detections:
        """Run on one region of the BGR frame; boxes in frame pixels, thresholds applied (no threshold
        above ``floor`` when one is given)."""
        crop = bgr[region.y : region.y + region.h, region.x : region.x + region.w]
        img, sx, sy, px, py = self.prepare_pixels(crop)
        with self.interpreter() as model:
            outputs = model.run_pixels(img, self.input_range)
        raw = self.decode(outputs, floor)
        valid = (raw.labels >= 0) & (raw.labels < len(self.class_map))
        raw = raw.select(valid)
        thresholds = self.thresholds if floor is None else np.minimum(self.thresholds, np.float32(floor))
        keep = (self.class_map[raw.labels] >= 0) & (raw.scores >= thresholds[raw.labels])
        raw = raw.select(keep)
        b = raw.boxes.copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - px) / sx + region.x
        b[:, [1, 3]] = (b[:, [1, 3]] - py) / sy + region.y
        fh, fw = bgr.shape[:2]
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, fw)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, fh)
        ok = (b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)
        return Detections(
            b[ok].astype(np.float32),
            raw.scores[ok].astype(np.float32),
            self.class_map[raw.labels[ok]].astype(np.int16),
            np.zeros(int(ok.sum()), np.float32),
        )


@dataclass(slots=True)
class ModelFrame:
    """One model's work on one frame: its regions' results as they come, and the ms they took."""

    model: LoadedModel
    pieces: list[Future[Detections]]
    """The whole frame's (and tiles') results."""
    regions: int
    """Regions the model sees on this frame (whole frame, tiles and crops)."""
    crops: Callable[[], list[Detections]] | None = None
    windows: list[Window] | None = None
    """The scan's windows on this frame (x, y, w, h)."""
    scanned: list[Future[Detections]] = field(default_factory=list)
    spent_ms: list[float] = field(default_factory=list)
    """Milliseconds each of its regions took (they may run side by side)."""
    result: Detections | None = None


class Detector:
    """Runs every configured model on a frame. Not thread-safe: call from one thread at a time."""

    def __init__(self, models: list[LoadedModel], tiling: TilingConfig, merge_iou: float = 1.0,
                 threads: int = 1) -> None:
        self.models = models
        self.tiling = tiling
        self.merge_iou = merge_iou
        self.change = FrameChange()
        """How the frame changed since the last one (for the scan and for still crops)."""
        self.tracks_change = any(m.scan is not None or (m.crop_class_ids.size and m.cfg.reuse_still_crops)
                                 for m in models)
        """Whether any model reads :attr:`change` (else it is not computed)."""
        self.last_timings_ms: dict[str, float] = {}
        """Milliseconds each model's regions took on the last frame, summed (they may overlap in time)."""
        self.sources = [self._sources(i) for i in range(len(models))]
        """Per model, the earlier models whose classes it reads (crops, the scan's explained boxes)."""
        self.executor: Executor = InlineExecutor()
        """Where the regions run: the caller's thread, or ``threads`` workers."""
        if threads > 1:
            pool = ThreadPoolExecutor(threads, thread_name_prefix="detect")
            self.executor = pool
            self._closer = weakref.finalize(self, pool.shutdown, wait=False)

    @classmethod
    def from_config(cls, cfg: DetectConfig) -> Detector:
        """Load and check every model; raises :class:`ModelError` naming the file and the problem."""
        check_model_names(cfg)
        models = [LoadedModel(m, cfg.threads) for m in cfg.models]
        check_crop_sources(models)
        return cls(models, cfg.tiling, cfg.merge_iou, cfg.threads)

    def close(self) -> None:
        """Let the worker threads go once their regions are done (the detector is not used again)."""
        if isinstance(self.executor, ThreadPoolExecutor):
            self._closer()

    def reset(self) -> None:
        """Start a new stream: scanning models search the next frame whole."""
        self.change.reset()
        for m in self.models:
            m.still_crops = []
            if m.scan is not None:
                m.scan.reset()

    def _tiled(self, model: LoadedModel) -> bool:
        return self.tiling.enabled and (not self.tiling.models or model.cfg.name in self.tiling.models)

    def _sources(self, i: int) -> list[int]:
        read = np.union1d(self.models[i].crop_class_ids, self.models[i].scan_explained_ids
                          if self.models[i].scan is not None else np.zeros(0, np.int16))
        return [j for j in range(i) if np.isin(self.models[j].class_map, read).any()]

    def _timed(self, work: ModelFrame, run: Callable[[np.ndarray, Region], Detections],
               bgr: np.ndarray, region: Region) -> Future[Detections]:
        """Start ``run(bgr, region)`` on the executor, adding its milliseconds to ``work``."""
        def timed() -> Detections:
            t0 = time.perf_counter()
            try:
                return run(bgr, region)
            finally:
                work.spent_ms.append((time.perf_counter() - t0) * 1000.0)
        return self.executor.submit(timed)

    def detect(self, pixels_bgr: np.ndarray) -> Detections:
        """All models' detections on one ``(H, W, 3)`` uint8 BGR frame, in frame pixels."""
        if pixels_bgr.ndim != 3 or pixels_bgr.shape[2] != 3 or pixels_bgr.dtype != np.uint8:
            raise ValueError(f"detect needs an (H, W, 3) uint8 BGR image, got {pixels_bgr.shape} {pixels_bgr.dtype}")
        h, w = pixels_bgr.shape[:2]
        if self.tracks_change:
            self.change.update(pixels_bgr)
        frame = [self._start(m, pixels_bgr) for m in self.models]
        for i, work in enumerate(frame):
            if work.model.crop_class_ids.size or work.model.scan is not None:
                seen = Detections.concat([self._finish(frame[j], pixels_bgr) for j in self.sources[i]])
                self._start_dependent(work, pixels_bgr, seen)
        found = Detections.concat([self._finish(work, pixels_bgr) for work in frame])
        self.last_timings_ms = {work.model.cfg.name: sum(work.spent_ms) for work in frame}
        return merged(found, self.merge_iou)

    def _start(self, m: LoadedModel, bgr: np.ndarray) -> ModelFrame:
        """Start a model on the whole frame (and its tiles), as its config asks."""
        h, w = bgr.shape[:2]
        regions = tile_regions(w, h, self.tiling) if self._tiled(m) else [Region(0, 0, w, h)]
        if not m.cfg.full_frame:
            regions = regions[1:]  # tile_regions starts with the whole frame
        work = ModelFrame(m, [], len(regions))
        work.pieces = [self._timed(work, m.detect_region, bgr, r) for r in regions]
        return work

    def _start_dependent(self, work: ModelFrame, bgr: np.ndarray, seen: Detections) -> None:
        """Start a model's crops around the boxes ``seen`` from earlier models, and its scan's windows."""
        m, (h, w) = work.model, bgr.shape[:2]
        if m.crop_class_ids.size:
            crops = crop_regions(seen, m, w, h)
            work.regions += len(crops)
            work.crops = m.detect_crops(crops, self.change, lambda r: self._timed(work, m.detect_crop, bgr, r))
        if m.scan is not None:
            scan = m.cfg.scan
            work.windows = m.scan.plan(w, h, self.change.change, explained_boxes(
                seen, m.scan_explained_ids, scan.explained_min_score, scan.explained_large_share * w * h,
                scan.explained_large_min_score))
            work.scanned = [self._timed(work, m.detect_window, bgr, Region(*window)) for window in work.windows]

    def _finish(self, work: ModelFrame, bgr: np.ndarray) -> Detections:
        """A model's boxes on this frame, once all its regions are done (computed once)."""
        if work.result is not None:
            return work.result
        m, height = work.model, bgr.shape[0]
        pieces = [f.result() for f in work.pieces]
        if work.crops is not None:
            pieces += work.crops()
        if m.scan is not None:
            assert work.windows is not None
            scanned = self._second_looks(work, bgr, Detections.concat([f.result() for f in work.scanned]))
            pieces.append(m.scan.hold(m.window_nms(scanned), work.windows))
        found = Detections.concat(pieces)
        if m.cfg.max_box_fraction < 1.0 and len(found):
            found = found.select(found.boxes[:, 3] - found.boxes[:, 1] <= m.cfg.max_box_fraction * height)
        if work.regions > 1 or m.scan is not None:
            found = m.window_nms(found)
        work.result = found
        return found

    def _second_looks(self, work: ModelFrame, bgr: np.ndarray, scanned: Detections) -> Detections:
        """The scan windows' boxes at the threshold, plus the weak ones a closer window found again."""
        m = work.model
        if m.zoom_window is None or m.scan is None:
            return scanned
        weak = m.weak(scanned)
        strong = scanned.select(~weak)
        h, w = bgr.shape[:2]
        limit = None if "first" in m.scan.last_counts else m.cfg.scan.zoom_windows
        looked, windows = zoom_windows(m.window_nms(scanned.select(weak)), strong, m.zoom_window, w, h, limit)
        m.scan.last_counts["zoom"] = len(windows)
        work.regions += len(windows)
        looks = [self._timed(work, m.detect_crop, bgr, Region(*window)) for window in windows]
        return Detections.concat([strong, zoomed(looked, [f.result() for f in looks])])


def merged(found: Detections, iou: float) -> Detections:
    """One box per object: same-class boxes overlapping at least ``iou`` reduced to the best-scoring
    one (class-aware NMS), in their original order; all of them at ``iou`` 1."""
    if iou >= 1.0 or len(found) < 2:
        return found
    return found.select(np.sort(decoders.nms(found.boxes, found.scores, found.class_ids, iou)))


STILL_LEVELS = 6.0
"""A crop is still when no 8 x 8 cell of it moved its mean grey level by more than this."""


def same_place(a: Region, b: Region) -> bool:
    """Two crops at about the same place: every edge within one cell."""
    return (abs(a.x - b.x) <= CELL_PX and abs(a.y - b.y) <= CELL_PX and abs(a.x + a.w - b.x - b.w) <= CELL_PX
            and abs(a.y + a.h - b.y - b.h) <= CELL_PX)


CARRY_IOU = 0.5
"""A crop overlapping one of the last frame's at least this much holds the same object."""


def region_box(r: Region) -> np.ndarray:
    """A region as one ``x1, y1, x2, y2`` box."""
    return np.array([[r.x, r.y, r.x + r.w, r.y + r.h]], np.float32)


def carried_crop(last: list[tuple[Region, Detections, int]], r: Region,
                 limit: int) -> tuple[Region, Detections, int] | None:
    """The last frame's crop that best overlaps ``r`` (IoU at least :data:`CARRY_IOU`, carried fewer
    than ``limit`` frames in a row), with its result moved and scaled from that crop onto ``r``."""
    candidates = [(prev, found, age) for prev, found, age in last if age < limit]
    if not candidates:
        return None
    ious = iou_matrix(region_box(r), np.concatenate([region_box(prev) for prev, _, _ in candidates]))[0]
    best = int(np.argmax(ious))
    if ious[best] < CARRY_IOU:
        return None
    prev, found, age = candidates[best]
    boxes = found.boxes.copy()
    sx, sy = r.w / prev.w, r.h / prev.h
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - prev.x) * sx + r.x
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - prev.y) * sy + r.y
    return r, Detections(boxes, found.scores, found.class_ids, found.angles), age + 1


SAME_OBJECT_IOU = 0.7
"""Seeds of any classes overlapping this much are one object and get one crop."""


def crop_regions(found: Detections, model: LoadedModel, width: int, height: int) -> list[Region]:
    """Crops around each seeding detection (``crop_shape``: a person's head, or a whole vehicle),
    inside the frame, best-scoring seeds first."""
    cfg = model.cfg
    keep = np.isin(found.class_ids, model.crop_class_ids) & (found.scores >= cfg.crop_min_score)
    seeds = found.select(keep)
    order = np.argsort(-seeds.scores)
    # one crop per object: a van found as both car and truck is searched once
    same_label = np.zeros(len(order), np.int32)
    order = order[decoders.nms(seeds.boxes[order], seeds.scores[order], same_label, SAME_OBJECT_IOU)]
    order = order[: cfg.max_crops]
    regions = []
    for x1, y1, x2, y2 in seeds.boxes[order]:
        if cfg.crop_shape == "box":
            region = box_crop(x1, y1, x2, y2, cfg.crop_grow, width, height)
        else:
            region = head_crop(x1, y1, x2, y2, cfg.crop_grow, width, height)
        if region is not None:
            regions.append(region)
    return regions


def explained_boxes(found: Detections, class_ids: np.ndarray, min_score: float, max_area: float,
                    large_min_score: float) -> np.ndarray:
    """Boxes of the given classes among ``found`` scoring at least ``min_score``, and at least
    ``large_min_score`` where they cover more than ``max_area`` square pixels."""
    boxes, scores = found.boxes, found.scores
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    confident = (scores >= min_score) & ((area <= max_area) | (scores >= large_min_score))
    return boxes[np.isin(found.class_ids, class_ids) & confident]


def fits_crop(found: Detections, region: Region, max_fraction: float) -> Detections:
    """The detections whose longer side is at most ``max_fraction`` of the crop's longer side."""
    if max_fraction >= 1.0 or not len(found):
        return found
    side = np.maximum(found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1])
    return found.select(side <= max_fraction * max(region.w, region.h))


def head_crop(x1: float, y1: float, x2: float, y2: float, grow: float, width: int, height: int) -> Region | None:
    """A square over the top of a person box, side ``grow x max(width, 0.45 height)``."""
    bw, bh = x2 - x1, y2 - y1
    side = int(round(min(grow * max(bw, 0.45 * bh), width, height)))
    if side < 8:
        return None
    x = int(round((x1 + x2) / 2 - side / 2))
    y = int(round(y1 - 0.1 * side))
    x = min(max(x, 0), width - side)
    y = min(max(y, 0), height - side)
    return Region(x, y, side, side)


def box_crop(x1: float, y1: float, x2: float, y2: float, grow: float, width: int, height: int) -> Region | None:
    """The box grown ``grow`` times about its centre, clipped to the frame."""
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = grow * (x2 - x1) / 2, grow * (y2 - y1) / 2
    left, top = max(0, int(round(cx - hw))), max(0, int(round(cy - hh)))
    right, bottom = min(width, int(round(cx + hw))), min(height, int(round(cy + hh)))
    if right - left < 8 or bottom - top < 8:
        return None
    return Region(left, top, right - left, bottom - top)
