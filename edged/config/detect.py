"""``[detect]``: the models, how each runs (whole frame, crops, tiles) and the real-world model set edged ships."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec

from edged.config.base import Bounds, Fraction, Section


class ScanConfig(Section):
    """High-resolution windows for faces and plates too small for the whole-frame pass: each frame
    the model runs, enlarged ``scale`` times, on the windows where the picture changed since the
    last frame (a newcomer is searched on the frame it appears), where it found something on the last frame
    (what it found stays found), and on a rotating sweep of the rest; the first frame of a
    stream (and every photo) is searched whole."""

    enabled: bool = False
    scale: Annotated[float, Bounds(0.25, 8)] = 2.0
    """Model input pixels per frame pixel in a window: a window covers the model input divided by
    this, so a 16 px face reaches the size the model finds reliably."""
    overlap: Fraction = 0.5
    """Neighbouring windows overlap by this fraction of their side: an object up to about this
    fraction of a window lies wholly inside one of them."""
    max_windows: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 48
    """At most this many changed and followed windows a frame after the first: the windows of held
    boxes about to expire (up to half of them), then changed areas (this frame's by how much changed,
    then those left out on earlier frames), then the windows of other held boxes, longest unchecked
    first. Bounds the cost."""
    sweep_windows: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 4
    """Windows of the rotating sweep a frame, on top of the others, so a still face the other rules
    miss is found within one turn of the sweep."""
    hold_frames: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 20
    """A box found in a window is reported again on later frames until a window holding it is
    scanned again (which replaces it) or for at most this many frames; its window is checked again
    before it expires."""
    explained_by: list[str] = msgspec.field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck"])
    """Changes inside boxes of these classes, found this frame by the models listed before at
    ``explained_min_score`` or more, call for no window: those models (and their crops) look there
    already. Held boxes and the sweep still reach them."""
    explained_min_score: Fraction = 0.3
    """Least score of an explaining box (as a crop seed's ``crop_min_score``): weak boxes, such as a
    person box over a whole crowd, explain nothing."""
    explained_large_share: Fraction = 0.5
    """A box covering more than this share of the frame explains changes only from
    ``explained_large_min_score``: ..."""
    explained_large_min_score: Fraction = 0.5
    """... a close person or vehicle is found with confidence and hides what lies behind it, while a
    weak box over a whole group holds small faces its crops (one head, one vehicle) never look at."""
    motion_levels: Annotated[float, Bounds(0, 255)] = 6.0
    """A cell of 8 x 8 pixels has changed when its mean grey level moved by more than this since
    the last frame."""
    zoom_scale: Annotated[float, Bounds(0, 8)] = 0.0
    """A window box scoring from ``zoom_min_score`` up to the model's threshold is looked at once
    more, in one window enlarged this many times and centred on it, and kept if that look finds it
    at the threshold (0: no second look): a small face seen at a few pixels too few in a window
    scores higher a little closer."""
    zoom_min_score: Fraction = 0.2
    """Least window score of a box that gets a second look."""
    zoom_follow: bool = False
    """Small held boxes are checked again in a closer window centred on them (at most
    ``zoom_windows`` a frame, longest unchecked first) instead of in their window of the grid, which
    leaves the grid's budget to newcomers."""
    zoom_windows: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 4
    """At most this many second looks a frame after the first, best-scoring boxes first (a stream's
    first frame and a photo look at every such box), and at most this many closer follows."""

    def __post_init__(self) -> None:
        if self.zoom_follow and self.zoom_scale <= 0:
            raise ValueError("zoom_follow needs zoom_scale > 0: the closer window is enlarged zoom_scale times")


class ModelConfig(Section):
    name: str
    file: str
    """Path of the .tflite file: ``models/NAME`` is the model ``NAME`` installed with edged
    (``models/MODELS.md`` lists them) unless the config file's folder holds ``models/NAME``; any
    other relative path is relative to the config file's folder (the working directory for a config
    made without a file)."""
    layout: Literal["ssd", "yolov5", "yolov8", "yolo_grid", "centernet", "nanodet", "centerface",
                    "blazeface", "db"]
    """Output layout (see ``edged/stages/detect/decoders.py``); ``yolo_grid`` is edged-det's raw maps,
    ``db`` a text detector's probability map (``edged/stages/detect/db.py``)."""
    input_size: tuple[Annotated[int, Bounds(8, 4096)], Annotated[int, Bounds(8, 4096)]]
    """Model input (width, height)."""
    labels: list[str]
    """Model output index -> edged class name ("" to ignore an output class)."""
    thresholds: dict[str, Fraction] = {}
    """Per-class score thresholds; classes not named use ``score_threshold``."""
    score_threshold: Fraction = 0.5
    nms_iou: Fraction = 0.45
    input_range: tuple[Annotated[float, Bounds(-1e4, 1e4)], Annotated[float, Bounds(-1e4, 1e4)]] | None = None
    """Float range the model expects pixels mapped into; ``None`` is the layout's usual one:
    (-1, 1) for blazeface and ssd (MobileNet-style), (0, 1) for yolov5/yolov8."""
    resize: Literal["letterbox", "stretch"] = "letterbox"
    """How the frame is fitted to the input: ``letterbox`` keeps the aspect ratio (padding), as
    BlazeFace and YOLO are trained; ``stretch`` for models trained on stretched images."""
    crops_from: list[str] = []
    """Classes (found by models listed *before* this one) around whose boxes this model also runs,
    on a crop (``crop_shape``), so a far pedestrian's small face fills the face model's input."""
    crop_shape: Literal["head", "box"] = "head"
    """Which part of each seeding box a crop covers: ``head``, a square over the box's top (faces in
    person boxes); ``box``, the whole box grown by ``crop_grow`` (plates in vehicle boxes)."""
    max_crop_fraction: Annotated[float, msgspec.Meta(gt=0, le=1.0)] = 1.0
    """Boxes found in a crop whose longer side exceeds this fraction of the crop's are dropped
    (1.0: no limit): a face fills at most about half of its head crop."""
    crop_min_score: Fraction = 0.3
    """Only detections scoring at least this seed a crop (weaker ones are mostly false)."""
    max_crops: Annotated[int, msgspec.Meta(ge=0, le=256)] = 16
    """At most this many crops per frame (best-scoring first): bounds the cost in a crowd."""
    reuse_still_crops: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 5
    """A crop whose pixels have not changed since the last frame (a parked car, a person standing)
    at about the same place reuses the last frame's result, at most this many frames in a row
    (0: always run)."""
    carry_crops: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0
    """A crop overlapping one of the last frame's by half or more (the same vehicle, moved) takes that
    crop's result moved and scaled with it, at most this many frames in a row, instead of running
    (0: every crop runs): a model too slow for every vehicle on every frame runs on each one every
    ``carry_crops + 1`` frames, and on a newcomer at once."""
    crop_grow: Annotated[float, msgspec.Meta(ge=1.0, le=4.0)] = 1.4
    """Crop side = this x max(box width, 0.45 x box height), centred on the box's upper part, so a
    turned or tilted head and its whole face fit with margin."""
    max_box_fraction: Annotated[float, msgspec.Meta(gt=0, le=1.0)] = 1.0
    """Boxes taller than this fraction of the frame height are dropped as implausible for this
    model (1.0: no limit)."""
    full_frame: bool = True
    """Also run on the whole (letterboxed) frame; a model with ``crops_from`` or ``scan`` may turn
    it off, one with none of them never runs, which is an error."""
    scan: ScanConfig = msgspec.field(default_factory=ScanConfig)
    """High-resolution windows for small objects (off unless ``scan.enabled``)."""

    def __post_init__(self) -> None:
        if not self.full_frame and not self.crops_from and not self.scan.enabled:
            raise ValueError("full_frame = false needs crops_from or scan (the model would never run)")


MAX_TILES_PER_FRAME = 16
"""Most tiles per frame: each tile is one more invoke of every tiled model, and 16 keep a frame
within a few hundred ms."""


class TilingConfig(Section):
    enabled: bool = False
    tile: tuple[Annotated[int, Bounds(64, 4096)], Annotated[int, Bounds(64, 4096)]] = (640, 640)
    overlap: Fraction = 0.2
    models: list[str] = []
    """Names of the models that also run on tiles (empty: every model)."""

    def origins(self, width: int, height: int) -> tuple[list[int], list[int]]:
        """Left and top edges of the tiles covering a ``width`` x ``height`` frame, ``overlap`` apart."""
        return (tile_starts(width, min(self.tile[0], width), self.overlap),
                tile_starts(height, min(self.tile[1], height), self.overlap))


def tile_starts(total: int, size: int, overlap: float) -> list[int]:
    """Evenly spaced start edges of ``size``-long pieces covering ``total``, overlapping at least ``overlap``."""
    if size >= total:
        return [0]
    step = max(1, int(size * (1.0 - overlap)))
    n = math.ceil((total - size) / step) + 1
    spacing = (total - size) / (n - 1)  # n evenly spaced edges from 0 to total - size
    return [int(round(i * spacing)) for i in range(n - 1)] + [total - size]


COCO_LABELS: tuple[str, ...] = tuple(
    {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}.get(i, "") for i in range(80)
)
"""The 80 COCO classes as edged labels: the road's six by name, the rest ignored ("")."""


def default_models() -> list[ModelConfig]:
    """The real-world models shipped with edged (``models/NAME``, installed with the package):
    ``objects`` (NanoDet) and ``face_frame`` (CenterFace) on the whole frame, ``face`` (BlazeFace) over each
    person's head, ``face_scan`` (the same CenterFace file at 192x128) on enlarged windows for small faces,
    ``plate`` (HyperLPR's plate SSD) in each vehicle box, ``plate_scan`` (the same SSD file) on enlarged
    windows for plates on vehicles the object model misses (provenance: ``models/MODELS.md``; why:
    ``docs/TUNING.md``)."""
    return [
        ModelConfig(
            name="objects",
            file="models/coco_nanodet_416x256_int8.tflite",
            layout="nanodet",
            input_size=(416, 256),
            labels=list(COCO_LABELS),
            score_threshold=0.15,
            nms_iou=0.5,
        ),
        ModelConfig(
            name="face",
            file="models/face_blazeface_short_range_int8.tflite",
            layout="blazeface",
            input_size=(128, 128),
            labels=["face"],
            score_threshold=0.25,
            nms_iou=0.3,
            crops_from=["person"],
            max_crop_fraction=0.6,
            full_frame=False,
        ),
        ModelConfig(
            name="face_frame",
            file="models/face_centerface_480x288_int8.tflite",
            layout="centerface",
            input_size=(480, 288),
            labels=["face"],
            score_threshold=0.3,
            nms_iou=0.3,
        ),
        ModelConfig(
            name="face_scan",
            file="models/face_centerface_480x288_int8.tflite",
            layout="centerface",
            input_size=(192, 128),
            labels=["face"],
            score_threshold=0.3,
            nms_iou=0.3,
            full_frame=False,
            scan=ScanConfig(enabled=True, scale=1.8, overlap=0.6, max_windows=6, sweep_windows=1, zoom_scale=3.0,
                            zoom_follow=True),
        ),
        ModelConfig(
            name="plate",
            file="models/plate_hyperlpr_ssd_448x256_int8.tflite",
            layout="ssd",
            input_size=(448, 256),
            labels=["plate"],
            score_threshold=0.07,
            nms_iou=0.45,
            input_range=(0.0, 255.0),
            crops_from=["car", "truck", "bus", "motorcycle"],
            crop_shape="box",
            crop_grow=1.1,
            crop_min_score=0.2,
            max_crop_fraction=0.6,
            full_frame=False,
        ),
        ModelConfig(
            name="plate_text",
            file="models/plate_text_ppocr3_256x256_int8.tflite",
            layout="db",
            input_size=(256, 256),
            labels=["plate"],
            score_threshold=0.5,
            nms_iou=0.3,
            crops_from=["car", "truck", "motorcycle"],
            crop_shape="box",
            crop_grow=1.1,
            crop_min_score=0.2,
            max_crop_fraction=0.6,
            carry_crops=2,
            full_frame=False,
        ),
        ModelConfig(
            name="plate_scan",
            file="models/plate_hyperlpr_ssd_448x256_int8.tflite",
            layout="ssd",
            input_size=(448, 256),
            labels=["plate"],
            score_threshold=0.3,
            nms_iou=0.45,
            input_range=(0.0, 255.0),
            max_crop_fraction=0.6,
            full_frame=False,
            scan=ScanConfig(enabled=True, scale=2.0, overlap=0.5, max_windows=1, sweep_windows=0,
                            explained_by=["person", "car", "truck", "bus", "motorcycle"]),
        ),
    ]


class DetectConfig(Section):
    enabled: bool = True
    threads: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    """Worker threads the models' regions run on, each model loaded once per thread with a single-threaded
    interpreter: models that need nothing from each other run side by side, as do a model's crops and
    scan windows (1: everything on the stage's own thread)."""
    models: list[ModelConfig] = msgspec.field(default_factory=default_models)
    tiling: TilingConfig = msgspec.field(default_factory=TilingConfig)
    merge_iou: Fraction = 0.5
    """Boxes of one class from different models (or regions) overlapping at least this much are one
    object: the best-scoring box is kept, so an object several models find gets one region, not a
    union of grown boxes (1.0: keep every box)."""
