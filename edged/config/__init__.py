"""The configuration tree: one TOML file loaded into typed, validated structs.

Every default lives here with a short reason; the measurements and tuning history behind the
defaults are in ``docs/TUNING.md``, by config key. A file only needs the keys it changes.
Errors name the key path and what was expected, e.g.
``config error at camera.fps: expected float >= 0.1, got str``.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from edged.core.paths import resolve_path  # noqa: F401 (re-exported for the config's users)

Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


def FloatIn(lo: float, hi: float) -> Any:  # noqa: N802 (reads as a type in annotations)
    """A float config value in [lo, hi]: every number a file or a remote set may give is bounded."""
    return Annotated[float, msgspec.Meta(ge=lo, le=hi)]


def IntIn(lo: int, hi: int) -> Any:  # noqa: N802
    """An integer config value in [lo, hi]."""
    return Annotated[int, msgspec.Meta(ge=lo, le=hi)]


class ConfigError(ValueError):
    """A config file could not be read or failed validation; the message names the key path."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: unknown keys are errors, not silently ignored."""


# --------------------------------------------------------------------------------------------- device
class PositionConfig(_Section):
    """Fixed camera position (WGS-84). A roadside unit does not move; a GPS source may override it."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] = 0.0
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] = 0.0
    alt: FloatIn(-1000, 10_000) = 0.0


class DeviceConfig(_Section):
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "rsu-0001"
    """Device name; used in MQTT topics, so limited to topic-safe characters."""
    data_dir: str = "data"
    """Persistent state (outbox, track-id counter, applied config). Relative paths are relative to
    the working directory."""
    position: PositionConfig = msgspec.field(default_factory=PositionConfig)


# --------------------------------------------------------------------------------------------- camera
class FakeCameraConfig(_Section):
    seed: IntIn(0, 2**31 - 1) = 7
    """Scene seed: the same seed renders the same frames and ground truth."""
    realtime: bool = True
    """Pace capture at ``camera.fps`` on the wall clock; off renders as fast as the pipeline
    takes frames (tests, benchmarks, simulated runs)."""
    cars_per_minute: FloatIn(0, 600) = 24.0
    """About one car every 2.5 s: enough traffic that tracks overlap, few enough to count by eye."""
    people_per_minute: FloatIn(0, 600) = 12.0
    events: bool = True
    """Script the light change, "freeze" and "cover" events."""


class FileCameraConfig(_Section):
    path: str = ""
    """A video file or a folder of images (sorted by name)."""
    loop: bool = False
    realtime: bool = True
    """Replay at ``camera.fps`` on the wall clock; off replays as fast as the pipeline takes frames."""


class V4l2CameraConfig(_Section):
    device: str = "/dev/video0"
    gain_unity_value: IntIn(0, 1_000_000) | None = None
    """Gain control value that means 1x. Unset: the control's minimum (drivers start at unity)."""
    gain_units_per_x: FloatIn(0.001, 10_000) = 16.0
    """Gain control units per 1x of linear gain (gain = 1 + (value - unity) / units). 16: the 1/16
    steps of common OmniVision sensors; V4L2 gives no scale, so set it for your camera."""


class PiCameraConfig(_Section):
    camera_num: IntIn(0, 7) = 0


class CameraConfig(_Section):
    backend: Literal["fake", "file", "picamera2", "v4l2"] = "fake"
    fps: Annotated[float, msgspec.Meta(ge=0.1, le=120)] = 10.0
    """Frames per second. 10 fps sees a car at 50 km/h every 1.4 m: several frames per object in view."""
    width: Annotated[int, msgspec.Meta(ge=64, le=8192)] | None = None
    height: Annotated[int, msgspec.Meta(ge=64, le=8192)] | None = None
    """Frame size. Unset (the default), a file source runs at its own size (a 768x576 video stays
    768x576) and the fake, picamera2 and v4l2 sources at ``DEFAULT_SIZE``; set both to resize (file,
    v4l2) or to pick the sensor mode (picamera2)."""
    sensor_size: tuple[IntIn(64, 16_384), IntIn(64, 16_384)] = (1920, 1080)
    """The largest frame (width, height) a remote ``set`` may ask for: set it to the sensor's native
    size (4056x3040 for the Pi HQ camera). Memory grows with the frame; a local file may go higher."""
    segment_s: FloatIn(1, 3600) = 60.0
    """Length of a video segment: frames of one segment share a ``video_id`` and platforms store
    one file per segment."""
    fake: FakeCameraConfig = msgspec.field(default_factory=FakeCameraConfig)
    file: FileCameraConfig = msgspec.field(default_factory=FileCameraConfig)
    DEFAULT_SIZE: ClassVar[tuple[int, int]] = (1280, 720)
    v4l2: V4l2CameraConfig = msgspec.field(default_factory=V4l2CameraConfig)
    picamera2: PiCameraConfig = msgspec.field(default_factory=PiCameraConfig)

    def __post_init__(self) -> None:
        if (self.width is None) != (self.height is None):
            raise ValueError("set both width and height, or neither (the source's own size)")

    def size_or_default(self) -> tuple[int, int]:
        """The configured size, else ``DEFAULT_SIZE`` (what a sensor is asked for when unset)."""
        if self.width is None or self.height is None:
            return self.DEFAULT_SIZE
        return self.width, self.height


# ------------------------------------------------------------------------------------------- exposure
class ExposureConfig(_Section):
    """Exposure "meter and lock": auto exposure runs for a moment, then the camera is locked to a
    short fixed shutter with the gain that keeps the metered brightness, so moving objects stay sharp."""

    enabled: bool = True
    fixed_shutter_us: Annotated[float, msgspec.Meta(ge=10, le=1_000_000)] = 2000.0
    """Fixed shutter time (µs) while locked. 2 ms: a car at 60 km/h moves 3.3 cm, under a pixel at
    typical roadside distances."""
    remeter_period_s: FloatIn(1, 86_400) = 60.0
    """Re-meter every minute: daylight changes slowly, and each re-meter costs a few auto frames.
    Start to start: a cycle is ``settle_s`` of auto exposure then the lock until the next cycle, on a
    fixed grid from the first metering (see :mod:`edged.runtime.exposure`)."""
    settle_s: FloatIn(0, 60) = 1.0
    """How long AE runs before T and S are read; libcamera's AE converges in ~10-20 frames."""
    max_gain: FloatIn(1, 64) = 16.0
    """Upper clamp on the computed gain (the sensor's own range clamps too); above ~16x noise
    ruins plates at night, so the frame gets darker instead and the clamp is recorded."""


# ------------------------------------------------------------------------------------------- pipeline
class PipelineConfig(_Section):
    frame_queue: IntIn(1, 64) = 2
    """Frames waiting for detection. Small on purpose: when detection falls behind, the oldest
    frame is dropped (and counted) rather than latency growing."""
    result_queue: IntIn(1, 1024) = 16
    stats_period_s: FloatIn(0.5, 3600) = 5.0
    """How often the daemon logs its stats line (fps, per-stage ms, queue depths, drops)."""
    opencv_threads: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    """Threads OpenCV may use inside one call (resize, colour conversion, blur, encoding); 1 runs
    each call on the calling thread. The daemon already overlaps its stages on their own threads, so
    OpenCV's pool only adds hand-off on these small per-frame calls (1 was faster than 2)."""


class OutputConfig(_Section):
    dir: str = "out"
    """Local output folder for the demo: frames, run summary."""
    save_every: IntIn(0, 1_000_000) = 1
    """Write every n-th processed frame as JPEG (0: none)."""
    jpeg_quality: Annotated[int, msgspec.Meta(ge=10, le=100)] = 85
    min_free_bytes: IntIn(0, 1 << 40) = 64 << 20
    """Free disk space (bytes) below which no frame is written: local frames are a convenience and
    must not take the room of the outbox, which may share the disk."""


# -------------------------------------------------------------------------------------------- detect
class ModelConfig(_Section):
    name: str
    file: str
    """Path of the .tflite file; relative paths are relative to the working directory."""
    layout: Literal["ssd", "yolov5", "yolov8", "yolo_grid", "centernet", "nanodet", "centerface",
                    "blazeface"]
    """Output layout (see ``edged/stages/detect/decoders.py``); ``yolo_grid`` is edged-det's raw maps."""
    input_size: tuple[IntIn(8, 4096), IntIn(8, 4096)]
    """Model input (width, height)."""
    labels: list[str]
    """Model output index -> edged class name ("" to ignore an output class)."""
    thresholds: dict[str, Fraction] = {}
    """Per-class score thresholds; classes not named use ``score_threshold``."""
    score_threshold: Fraction = 0.5
    nms_iou: Fraction = 0.45
    input_range: tuple[FloatIn(-1e4, 1e4), FloatIn(-1e4, 1e4)] | None = None
    """Float range the model expects pixels mapped into; ``None`` is the layout's usual one:
    (-1, 1) for blazeface and ssd (MobileNet-style), (0, 1) for yolov5/yolov8."""
    resize: Literal["letterbox", "stretch"] = "letterbox"
    """How the frame is fitted to the input: ``letterbox`` keeps the aspect ratio (padding), as
    BlazeFace and YOLO are trained; ``stretch`` for models trained on stretched images."""
    crops_from: list[str] = []
    """Classes (found by models listed *before* this one) around whose boxes this model also
    runs, on a square crop of the box's top: the face model searches each person's head, so a
    12 px face of a far pedestrian fills its 128 px input instead of vanishing in the full frame."""
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
    crop_grow: Annotated[float, msgspec.Meta(ge=1.0, le=4.0)] = 1.4
    """Crop side = this x max(box width, 0.45 x box height), centred on the box's upper part, so a
    turned or tilted head and its whole face fit with margin."""
    max_box_fraction: Annotated[float, msgspec.Meta(gt=0, le=1.0)] = 1.0
    """Boxes taller than this fraction of the frame height are dropped as implausible for this
    model (1.0: no limit)."""
    full_frame: bool = True
    """Also run on the whole (letterboxed) frame. A model with ``crops_from`` may turn it off and
    run on its crops (and tiles) only; a model with neither never runs, which is an error."""

    def __post_init__(self) -> None:
        if not self.full_frame and not self.crops_from:
            raise ValueError("full_frame = false needs crops_from (the model would never run)")


MAX_TILES_PER_FRAME = 16
"""Most tiles per frame: each tile is one more invoke of every tiled model, and 16 keep a frame
within a few hundred ms."""


class TilingConfig(_Section):
    enabled: bool = False
    tile: tuple[IntIn(64, 4096), IntIn(64, 4096)] = (640, 640)
    overlap: Fraction = 0.2
    models: list[str] = []
    """Names of the models that also run on tiles (empty: every model)."""

    def origins(self, width: int, height: int) -> tuple[list[int], list[int]]:
        """Left and top edges of the tiles covering a ``width`` x ``height`` frame, ``overlap`` apart."""

        def starts(total: int, size: int) -> list[int]:
            if size >= total:
                return [0]
            step = max(1, int(size * (1.0 - self.overlap)))
            n = math.ceil((total - size) / step) + 1
            spacing = (total - size) / (n - 1)  # n evenly spaced edges from 0 to total - size
            return [int(round(i * spacing)) for i in range(n - 1)] + [total - size]

        return starts(width, min(self.tile[0], width)), starts(height, min(self.tile[1], height))


COCO_LABELS: tuple[str, ...] = tuple(
    {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}.get(i, "") for i in range(80)
)
"""The 80 COCO classes as edged labels: the road's six by name, the rest ignored ("")."""


def default_models() -> list[ModelConfig]:
    """The models shipped in ``models/`` (provenance and figures: ``models/MODELS.md``; why
    these: ``docs/TUNING.md``).

    ``objects`` (NanoDet int8) finds people and vehicles on the whole frame; ``face`` (BlazeFace int8)
    searches a square over each person's head; ``face_frame`` (CenterFace int8) finds faces on the whole
    frame that no person box holds; ``plate`` (edged-det int8) searches each vehicle box. Score
    thresholds are low (near ``track.low_score``): the tracker's second association needs the low-score
    detections, and tracks and privacy apply their own thresholds.
    """
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
            name="plate",
            file="models/edged_det_crop_320x192_int8.tflite",
            layout="yolo_grid",
            input_size=(320, 192),
            labels=["plate", "", "", "", ""],
            score_threshold=0.1,
            nms_iou=0.5,
            crops_from=["car", "truck", "bus", "motorcycle"],
            crop_shape="box",
            crop_grow=1.1,
            full_frame=False,
        ),
    ]


def fake_scene_models() -> list[ModelConfig]:
    """The models for the fake camera's rendered road (the demo, ``edged_sim``, the fake-scene
    benchmarks): edged-det, trained on that renderer, on the whole frame, then BlazeFace on each
    person's head. Each model set stays on its own kind of scene (why: ``docs/TUNING.md``).
    """
    return [
        ModelConfig(
            name="det",
            file="models/edged_det_int8.tflite",
            layout="yolo_grid",
            input_size=(640, 384),
            labels=["plate", "car", "person", "truck", "bus"],
            score_threshold=0.1,
            nms_iou=0.5,
        ),
        ModelConfig(
            name="face",
            file="models/face_blazeface_short_range_int8.tflite",
            layout="blazeface",
            input_size=(128, 128),
            labels=["face"],
            score_threshold=0.1,
            nms_iou=0.3,
            crops_from=["person"],
            max_box_fraction=0.3,
            full_frame=False,
        ),
    ]


class DetectConfig(_Section):
    enabled: bool = True
    threads: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    models: list[ModelConfig] = msgspec.field(default_factory=default_models)
    tiling: TilingConfig = msgspec.field(default_factory=TilingConfig)


# ---------------------------------------------------------------------------------------------- track
class TrackConfig(_Section):
    """ByteTrack-style tracker, one track set per class: detections are matched to the tracks'
    Kalman-predicted boxes in two passes, high scores first, then the low-score rest."""

    high_score: Fraction = 0.5
    """Detections scoring at least this take part in the first association (ByteTrack's
    ``track_thresh``); the rest, down to ``low_score``, only in the second."""
    low_score: Fraction = 0.1
    """Detections below this are ignored. 0.1 as ByteTrack: the second association recovers objects
    whose score dropped (partly occluded, blurred). The detector's own score threshold must be at or
    below this, or the second association gets no input."""
    birth_score: Fraction = 0.6
    """An unmatched detection starts a candidate track only at or above this (ByteTrack's
    ``track_thresh + 0.1``): borderline false positives do not spawn tracks."""
    min_iou_first: Fraction = 0.2
    """Least IoU between a predicted box and a high-score detection to match them (ByteTrack's
    ``match_thresh`` 0.8 as a cost). Low, because a fast near car at 10 fps moves a large fraction of
    its width between frames and class separation already removes most wrong candidates."""
    min_iou_second: Fraction = 0.5
    """Least IoU for the second (low-score) association: stricter, as in ByteTrack, because low
    scores are often false positives."""
    min_iou_candidate: Fraction = 0.3
    """Least IoU to extend an unconfirmed candidate (ByteTrack's 0.7 cost for unconfirmed tracks),
    measured on boxes grown by ``candidate_buffer``."""
    candidate_buffer: FloatIn(0, 10) = 0.5
    """A candidate's velocity is unknown, so its box and the detections are grown by this fraction of
    their size on every side before the IoU (buffered IoU, as C-BIoU): an object that moves more than
    its own width per frame still confirms."""
    confirm_hits: IntIn(1, 100) = 2
    """Consecutive matched frames before a candidate becomes a track: it then gets an id, is
    reported and can upload an image. 2 means a one-frame false positive never becomes a track (nor
    triggers an upload) while a real object loses one frame (0.1 s at 10 fps)."""
    lost_buffer_s: FloatIn(0.1, 600) = 3.0
    """How long (s) a track unmatched by any detection is kept, coasting on its Kalman prediction,
    before removal. 3 s bridges a pedestrian hidden behind a passing bus; longer buffers let a newcomer
    inherit a departed object's id."""
    leaving_growth: FloatIn(0, 10) = 0.3
    """A track leaving through a border (its last box clipped there and smaller than the object's
    full size) is never paired with a detection more than this fraction wider (taller) than what is
    left of it: what remains of a leaving object only shrinks, while one entering there grows."""
    predicted_output_s: FloatIn(0, 60) = 0.5
    """Lost tracks are reported (``detected=False``, predicted box) for this long after their last
    detection, so privacy keeps covering a face or plate the detector missed for a few frames. 0.5 s:
    detector misses on a visible object rarely last longer, and a prediction drifts after that."""
    history_len: IntIn(1, 10_000) = 64
    """Observations kept per track (plus its first one): 6.4 s at 10 fps, enough for a trail's
    direction and speed; memory stays bounded for parked cars."""
    id_block: IntIn(1, 1 << 20) = 1024
    """Track ids reserved per write of the id store: one small write per 1024 tracks; a restart skips
    at most that many ids."""
    std_position: FloatIn(1e-6, 10) = 0.05
    """Kalman position noise as a fraction of box size per frame (ByteTrack's 1/20)."""
    std_velocity: FloatIn(1e-6, 10) = 0.00625
    """Kalman velocity noise as a fraction of box size per frame (ByteTrack's 1/160)."""
    std_init_velocity: FloatIn(1e-6, 10) = 0.25
    """Velocity uncertainty of a new track, fraction of box size per frame. Wider than ByteTrack's
    10/160 (tuned for pedestrians at 30 fps): roadside objects at 10 fps move up to about half their
    width per frame, and a tight prior makes new tracks lag and lose small fast objects."""

    def __post_init__(self) -> None:
        if not self.low_score <= self.high_score <= self.birth_score:
            raise ValueError(
                f"need low_score <= high_score <= birth_score, got {self.low_score}, {self.high_score}, "
                f"{self.birth_score}"
            )


class CalibrationConfig(_Section):
    """Image -> ground mapping for the ground point of each observation.

    Ground coordinates are metres on a flat ground plane in a local frame centred below the camera:
    ``x`` east, ``y`` north (with ``yaw_deg`` 0 the camera looks north).
    """

    model: Literal["none", "homography", "pinhole"] = "none"
    """``none``: no calibration (ground points are NaN). ``homography``: the 3x3 ``homography``
    maps image pixels to ground metres. ``pinhole``: intrinsics + mounting height and angles give the
    ground plane. Default ``none`` because any made-up calibration would give wrong positions that look
    right; a site sets its own."""
    homography: list[list[FloatIn(-1e9, 1e9)]] = msgspec.field(
        default_factory=lambda: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    )
    """Row-major 3x3 image (u, v, 1) -> ground (x, y, 1), e.g. from ``cv2.findHomography`` on four or
    more surveyed road markings."""
    fx: FloatIn(1, 1e6) = 1000.0
    """Focal length in pixels (from ``cv2.calibrateCamera``)."""
    fy: FloatIn(1, 1e6) = 1000.0
    cx: FloatIn(-1e5, 1e5) | None = None
    """Principal point; ``None`` is the image centre."""
    cy: FloatIn(-1e5, 1e5) | None = None
    distortion: list[FloatIn(-1e3, 1e3)] = []
    """OpenCV distortion coefficients (k1, k2, p1, p2[, k3...]); empty for none."""
    height_m: FloatIn(0.1, 1000) = 6.0
    """Camera height above the road: 6 m is a typical roadside pole."""
    pitch_deg: Annotated[float, msgspec.Meta(gt=0, le=90)] = 15.0
    """Downward tilt of the optical axis below the horizon (must be > 0 to see the ground)."""
    yaw_deg: FloatIn(-360, 360) = 0.0
    """Compass bearing of the optical axis, degrees clockwise from north."""
    roll_deg: FloatIn(-360, 360) = 0.0
    """Rotation about the optical axis, clockwise as seen from behind the camera."""

    def __post_init__(self) -> None:
        rows = self.homography
        if len(rows) != 3 or any(len(r) != 3 for r in rows):
            raise ValueError("homography must be 3 rows of 3 numbers")
        if len(self.distortion) not in (0, 4, 5, 8, 12, 14):
            raise ValueError(f"distortion must have 0, 4, 5, 8, 12 or 14 coefficients, got {len(self.distortion)}")


class SelectConfig(_Section):
    """Best-image selection: which image of each track qualifies, which is better, and which is
    sent at once rather than through the rate-limited cached queue. Pixels are of the full image."""

    min_width: FloatIn(0, 8192) = 32.0
    """A track's box (after its first observation) qualifies only this wide (px). 32 px is COCO's
    small/medium boundary: below it detectors and a cloud re-analysis gain little from the crop."""
    min_height: FloatIn(0, 8192) = 32.0
    """Least box height (px) to qualify, same reason as ``min_width``."""
    score1: Fraction = 0.5
    """Least detection score to qualify, the usual detector operating point (below it the class is
    about as likely wrong as right). Conventionally score1 < score2."""
    score2: Fraction = 0.7
    """Least score to send immediately: confident enough to spend the uplink at once."""
    edge1: FloatIn(0, 8192) = 4.0
    """Least edge distance (px) of a better image: the box does not touch the border, so the object
    is wholly in view; 4 px absorbs box jitter. Conventionally edge1 < edge2."""
    edge2: FloatIn(0, 8192) = 32.0
    """edge2: an immediate image's box must be more than this (px) inside every border, well clear of
    truncation even with box error."""
    area_ratio: Fraction = 0.01
    """Box area / image area above which (with score2, edge2) an image goes immediately: 1% of a
    1280x720 image is about a 96x96 px box, a near object with readable detail."""
    classes: list[str] = msgspec.field(
        default_factory=lambda: ["person", "car", "truck", "bus", "bicycle", "motorcycle"]
    )
    """Classes whose tracks select best images and appear in upload packages. Sensitive classes
    (face, plate) are left out: their data goes only to the functional platforms."""
    cached_period_s: FloatIn(0.1, 3600) = 2.0
    """The cached queue sends its oldest package once per this period (s); 2 s is the required
    cached rate (one package every 2 s)."""
    cached_in_flight: IntIn(1, 1000) = 1
    """Cached packages sent but not yet confirmed; 1 keeps delivery strictly oldest first."""
    ack_timeout_s: FloatIn(1, 3600) = 30.0
    """A send not confirmed (or failed) within this counts as failed and is retried: an MQTT PUBACK
    takes well under a second on a working link, so 30 s means it was lost."""

    def __post_init__(self) -> None:
        from edged.core.classes import CLASS_NAMES

        unknown = [c for c in self.classes if c not in CLASS_NAMES]
        if unknown:
            raise ValueError(f"unknown class {unknown[0]!r} in classes; known: {', '.join(CLASS_NAMES)}")


# ------------------------------------------------------------------------------------------- remote
class BrokerConfig(_Section):
    """One MQTT broker connection: the keys the uplinks and the remote control share
    (:mod:`edged.link.mqtt` builds the TLS context and the reconnect delays from them)."""

    host: str = "localhost"
    """Broker host. On a roadside unit this is usually a broker reached over the cellular link (or
    a local bridge on ``localhost`` that forwards to it)."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    """1883 is MQTT's plain port; use 8883 with ``tls = true``."""
    tls: bool = False
    ca_file: str = ""
    """CA bundle that signs the broker's certificate ("" with ``tls``: the system store)."""
    cert_file: str = ""
    """Client certificate for mutual TLS ("" for none)."""
    key_file: str = ""
    """Private key of ``cert_file``; keep it mode 0600, owned by the service user."""
    username: str = ""
    password: str = ""
    """Never logged; shown as ``<redacted>`` wherever the config is echoed."""
    client_id: str = ""
    """MQTT client id; "" gives ``edged-<device.id>-remote`` for the remote control and
    ``edged-<device.id>-<destination>`` for an uplink: unique per device and link, so two units
    never kick each other off the broker."""
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    """A dead link is noticed within 1.5 keepalives; 30 s keeps idle cellular traffic small (one
    PINGREQ/PINGRESP pair a minute) while "offline" appears on ``status`` within ~45 s of a power cut."""


class MqttRemoteConfig(BrokerConfig):
    """Command connection to the device broker: ``edged/<device.id>/config/set`` and friends."""

    enabled: bool = False
    """Off by default: the demo runs without a broker; a roadside config turns it on."""
    reconnect_min_s: FloatIn(0.1, 3600) = 1.0
    """First reconnect delay; doubles on each failure up to ``reconnect_max_s``."""
    reconnect_max_s: FloatIn(0.1, 86_400) = 60.0
    """Longest wait between attempts: a broker outage costs at most a minute of extra downtime
    after it ends, and a thousand units do not hammer a recovering broker."""
    max_payload_bytes: IntIn(1024, 16 << 20) = 262_144
    """Larger command payloads are refused unread; a full config is a few kB."""

    def __post_init__(self) -> None:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")


class SerialRemoteConfig(_Section):
    """Maintenance console on a serial line (a USB-UART adapter on site)."""

    enabled: bool = False
    """Off by default: the port may not exist, and on a Pi ``/dev/ttyUSB0`` only appears when a
    technician plugs an adapter in (the console waits for it)."""
    port: str = "/dev/ttyUSB0"
    """The usual name of the first USB-serial adapter on Linux."""
    baud: Annotated[int, msgspec.Meta(ge=300, le=4_000_000)] = 115200
    """The common default of terminal programs (picocom, minicom, PuTTY) and USB-UART adapters."""
    max_line_bytes: IntIn(256, 1 << 20) = 65_536
    """Longest request line; a whole config as JSON is a few kB."""
    auth_backoff_s: FloatIn(0, 60) = 1.0
    """Pause after a request that fails authentication (unsigned, bad signature, unknown key); it
    doubles with each failure in a row up to ``auth_backoff_max_s`` and resets on success, so
    guessing is slow while a technician's mistake costs a moment."""
    auth_backoff_max_s: FloatIn(0, 3600) = 60.0
    reopen_s: FloatIn(0.1, 3600) = 2.0
    """How often a missing or unplugged port is retried."""


class RemoteAuthConfig(_Section):
    """Who may change this unit remotely (``docs/SECURITY.md``); local-only: no remote set changes it."""

    mode: Literal["signed", "unsigned"] = "signed"
    """``signed``: a ``set`` on MQTT or the console, and a ``get`` on the console, must be signed
    (Ed25519) by a key below, for this device, unexpired, with a version ahead of the applied one.
    ``unsigned``: for local tests only; anyone who reaches the topics or the port may change what the
    policy lets an admin change (the daemon warns at start)."""
    operator_keys: list[str] = []
    """Public key files (``edged keygen operator``) whose signed commands may change what the
    policy lets an operator change (``edged/remote/policy.py``)."""
    admin_keys: list[str] = []
    """Public key files that may also change privileged keys: links on or off, timers, queues."""
    max_version_step: IntIn(1, 1_000_000) = 1000
    """A set's version may exceed the applied one by at most this: one command with version 2**53
    cannot lock every later command out."""
    max_validity_s: FloatIn(10, 7 * 86_400) = 3600.0
    """A signed command's ``expires`` may lie at most this far ahead of the device's clock; the
    device needs a set clock (NTP or an RTC) for signed commands."""


class RemoteConfig(_Section):
    """Remote configuration and operations: config get/set and commands over MQTT or the serial
    console, who may send them, and rollback of a config that stalls the pipeline."""

    mqtt: MqttRemoteConfig = msgspec.field(default_factory=MqttRemoteConfig)
    serial: SerialRemoteConfig = msgspec.field(default_factory=SerialRemoteConfig)
    auth: RemoteAuthConfig = msgspec.field(default_factory=RemoteAuthConfig)
    stats_period_s: FloatIn(0.1, 86_400) = 60.0
    """Period of the ``stats`` message: about 1.4k messages a day of ~1 kB (~45 MB a month on a
    metered link); a stall shows within a minute, and the systemd watchdog covers faster failures."""
    apply_timeout_s: FloatIn(1, 600) = 10.0
    """How long a new config has to carry a frame through the pipeline before it is rolled back:
    a picamera2 restart takes 1-3 s and the first frames after AE start a few more."""


class SystemdConfig(_Section):
    """Service manager integration (sd_notify READY/WATCHDOG/STOPPING)."""

    heartbeat_stale_s: FloatIn(0.1, 3600) = 10.0
    """Watchdog pings stop when no frame has passed the pipeline for this long. Longer than the
    longest legitimate pause (a camera restart while a config is applied, up to
    ``remote.apply_timeout_s``), far shorter than ``WatchdogSec`` in edged.service (60 s)."""


# ------------------------------------------------------------------------------------ outbox, uplink
class OutboxConfig(_Section):
    """The persistent outbox: every outgoing message is stored in SQLite until its receiver
    acknowledges it (see ``edged.link.outbox`` for the eviction and fsync policy)."""

    path: str = "outbox.sqlite"
    """SQLite file; a relative path is relative to ``device.data_dir``."""
    budget_bytes: IntIn(65_536, 1 << 40) = 1 << 30
    """Ring budget (stored envelopes + 128 B each). 1 GiB holds about three hours of a busy road's
    uploads (~100 kB/s of 200 kB images) through an outage, and is ~3% of a 32 GB SD card. On a
    smaller disk the outbox caps it at start to 80 % of the room it has (see ``edged.link.outbox``)."""
    synchronous: Literal["full", "normal"] = "full"
    """``full``: every commit fsyncs the WAL, so a stored message survives power loss; even an SD
    card fsyncs far more often than the few messages a second a camera makes. ``normal``: survives a
    crash of the process but may lose the last commits on power loss."""
    check_on_open: bool = True
    """Run ``PRAGMA quick_check`` at start: a damaged file is reported at once instead of failing
    later; costs about a second per GB."""
    reserve_bytes: IntIn(0, 1 << 34) = 8 << 20
    """Disk space kept preallocated beside the database (``<path>.reserve``) and released when the
    disk fills, so the outbox can still checkpoint, evict and ack; the WAL is kept under half of it.
    8 MiB: twice SQLite's usual WAL ceiling (1000 pages of 4 KiB) plus a 200 kB image; at most an
    eighth of the room on the disk (at least 64 KiB). 0 disables."""


class UplinkBrokerConfig(BrokerConfig):
    """One uplink's MQTT connection: the operations platform's broker or a functional platform's."""

    topic_prefix: str = ""
    """Messages go to ``<topic_prefix>/<kind>``; "" gives ``edged/<device.id>/<destination>``,
    e.g. ``edged/rsu-0001/func.face/sensitive``."""
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 32
    """Messages published and awaiting PUBACK. 32 keeps a 200 ms-RTT cellular link busy with small
    messages (32 / 0.2 s = 160 msg/s) while a disconnect re-sends at most 32."""


class UplinkConfig(_Section):
    """MQTT uplink to the operations platform and the functional platforms."""

    enabled: bool = False
    """Off by default: the demo runs without a broker (messages wait in the outbox)."""
    ops: UplinkBrokerConfig = msgspec.field(default_factory=UplinkBrokerConfig)
    """De-identified images, events and telemetry. Never carries a sensitive record."""
    functional: dict[Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}$")], UplinkBrokerConfig] = {}
    """Functional platforms by sensitive category (``face``, ``plate``): destination ``func.<name>``,
    each on its own connection. A category without an entry keeps its records in the outbox."""
    reconnect_min_s: FloatIn(0.1, 3600) = 1.0
    """First reconnect delay; doubles on each failure up to ``reconnect_max_s``."""
    reconnect_max_s: FloatIn(0.1, 86_400) = 60.0
    """Longest wait between attempts: a broker outage costs at most a minute of extra delay after
    it ends, and a thousand units do not hammer a recovering broker."""
    reconnect_jitter: Fraction = 0.5
    """Each delay is drawn from [d*(1-jitter), d]: units that lost the same broker spread out."""
    connect_timeout_s: FloatIn(1, 600) = 10.0
    """Wait for CONNACK: a TCP + TLS handshake over a poor cellular link takes a few seconds; a
    broker that refuses silently (e.g. a TLS alert paho does not surface) costs at most this."""
    rate_window_s: FloatIn(1, 3600) = 30.0
    """The link rate is measured over this much recent busy time: long enough to average a few
    200 kB images on a 1 Mbit/s link, short enough to follow a cellular link's changes."""
    quality_min: Annotated[int, msgspec.Meta(ge=10, le=100)] = 50
    """Lowest JPEG quality the link may push images to; below ~50 plates blur into blocks."""
    quality_max: Annotated[int, msgspec.Meta(ge=10, le=100)] = 90
    """Quality on a fast link; above 90 files grow fast for little visible gain."""
    quality_full_rate_bps: FloatIn(1000, 1e10) = 2_000_000.0
    """Measured rate (bytes/s) at or above which ``quality_max`` is used; below it quality falls
    linearly to ``quality_min`` at zero. 2 MB/s carries ten 200 kB images a second."""

    def __post_init__(self) -> None:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.quality_max < self.quality_min:
            raise ValueError("quality_max must be >= quality_min")


# --------------------------------------------------------------------------------------------- health
class HealthConfig(_Section):
    """Camera health checks from block pixel stability (``edged/stages/health/checks.py``): distortion by the
    processing, freeze, cover and defect pixels. Grey levels are 0-255, measured on the frame shrunk by
    ``downscale``."""

    enabled: bool = True
    block_size: Annotated[int, msgspec.Meta(ge=4, le=512)] = 32
    """Block edge in full-frame pixels. 32 gives 40x23 blocks at 1280x720: small enough that a
    distortion the size of a face is one or two whole blocks, large enough for stable statistics."""
    downscale: Annotated[int, msgspec.Meta(ge=1, le=8)] = 2
    """Statistics on a frame this many times smaller (must divide ``block_size``): 4x fewer pixels,
    and the 2x2 averaging halves sensor noise; any distortion worth flagging spans many pixels."""
    distortion_index: Annotated[float, msgspec.Meta(ge=-1, le=1)] = 0.90
    """A block outside the sensitive regions whose processed-vs-raw stability index falls below
    this is distorted; untouched blocks score exactly 1. 0.90 lies between what a JPEG round trip of
    the correct output costs and the faintest visible damage."""
    region_margin_px: FloatIn(0, 1000) = 0.0
    """Grow the sensitive regions by this much before excluding their blocks. 0 when the caller
    passes the regions as blurred (grown by privacy's margin); raise it if it passes detector boxes."""
    freeze_rms: FloatIn(0, 255) = 0.25
    """A frame is still when no block changed by more than this RMS (grey levels, small frame)
    since the previous frame: a frozen camera re-delivers identical frames (0), while even a very clean
    sensor's noise changes every block by more."""
    cover_block_std: FloatIn(0.01, 255) = 3.0
    """A block is flat when its pixel standard deviation is below this (a lens cap or hand is
    out of focus: only noise remains, a few grey levels even at high gain after 2x2 averaging)."""
    cover_fraction: Fraction = 0.95
    """A frame is covered when at least this fraction of blocks is flat ..."""
    cover_mean_spread: FloatIn(0, 255) = 12.0
    """... and the block means spread (std) by at most this: uniform across the frame. A road
    scene spreads by 30-60 grey levels between sky, asphalt and markings, even at night."""
    baseline_frames: IntIn(1, 100_000) = 100
    """Frames the running noise floor (reported telemetry) averages over: 10 s at 10 fps."""
    on_frames: IntIn(1, 10_000) = 3
    """Consecutive positive frames that start a freeze or cover event (0.3 s at 10 fps): no single
    odd frame raises an event, a real freeze is caught quickly."""
    off_frames: IntIn(1, 10_000) = 3
    """Consecutive negative frames that end an event, so one occurrence is one event."""
    defect_every: IntIn(0, 1_000_000) = 10
    """Sample every n-th frame for defect pixels (full resolution, ~10 ms); 0 disables. Once a
    second at 10 fps: defects are permanent, there is no hurry."""
    defect_min_abs: FloatIn(0.01, 255) = 40.0
    """A pixel is an outlier when it is at least this many grey levels from the mean of its 3x3
    block (8 neighbours) ... (a sixth of the range: far beyond noise, a stuck pixel is usually
    clipped to 255 or 0) ..."""
    defect_isolation: FloatIn(0.01, 255) = 20.0
    """... and brighter (darker) than all 8 neighbours by this much: a single pixel, not a lamp."""
    defect_persistence: Fraction = 0.75
    """A pixel that is an outlier in this fraction of samples is a defect. Content passing over a
    stuck pixel hides it in some samples (bright over hot, dark over dead); scene detail is not a
    single isolated extreme in the same place most of the time, and over a day a one-pixel night
    light is an outlier in well under 75 % of samples."""
    defect_min_samples: IntIn(1, 1_000_000) = 30
    """Samples before any defect is reported (30 s at the defaults)."""

    def __post_init__(self) -> None:
        if self.block_size % self.downscale:
            raise ValueError(f"block_size {self.block_size} must be a multiple of downscale {self.downscale}")


# -------------------------------------------------------------------------------------------- privacy
class PrivacyConfig(_Section):
    """De-identification of outgoing images and sealed sensitive records (``edged/privacy``)."""

    method: Literal["blur", "pixelate", "fill"] = "blur"
    """How a sensitive region is de-identified: ``blur`` (Gaussian-like smooth field), ``pixelate``
    (flat square cells) or ``fill`` (one flat colour). Blur is the default: it keeps the scene's
    colours and layout (SSIM) and compresses best; all three stop the face detector at the defaults."""
    margin: FloatIn(0, 4) = 0.4
    """Each side of a region's box is pushed out by this fraction of the box's width (left/right)
    and height (top/bottom): face boxes cover the inner face only (hair, ears and jaw lie outside), sit
    off the face, and a predicted box between detections drifts."""
    cells: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    """Strength, scaled to the region: a de-identified region keeps about this many cells of detail
    across its longer side (pixelate: cells x cells blocks; blur: a Gaussian of sigma = side / cells;
    fill ignores it), so the face itself (inside the ``margin``) is about one cell: a smooth smudge. At
    2 the face detector finds no more than on a flat fill."""
    min_cell_px: Annotated[int, msgspec.Meta(ge=1, le=256)] = 4
    """Cells are never smaller than this many pixels, so a small region is not left at nearly full
    resolution; 4 px also matches the smallest H.264 partition."""
    min_score: Fraction = 0.1
    """Sensitive detections scoring at least this are de-identified even before the tracker confirms
    them (a new face is covered in its first frame). 0.1, the face and plate models' own threshold:
    every sensitive detection is covered. A false blur costs a little utility (boxes are bounded by
    the model's ``max_box_fraction``), a missed one leaks a face."""
    confident_score: Fraction = 0.5
    """An untracked sensitive detection scoring below this is *unconfident*: still hidden, but only
    within ``unconfident_max_share``. Tracked objects and confident detections are always hidden."""
    unconfident_max_share: Fraction = 0.5
    """Unconfident regions are hidden best-score first while all hidden regions (grown by the
    margin) cover at most this share of the frame: a frame that is mostly blur tells the operations
    platform nothing. 1.0: no limit."""
    stabilize: bool = True
    """Temporal stability: per track, the region's box moves on a grid with hysteresis and its
    content is a slowly updated low-resolution field, so de-identified video compresses better than
    per-frame blur. Off: every frame is de-identified on its own."""
    grid_px: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8
    """Stabilised boxes move and resize in steps of this many pixels (an H.264 8x8 partition):
    between steps the region is pixel-identical to the previous frame and costs almost no bits."""
    shrink_per_frame: Fraction = 0.005
    """A stabilised box grows at once when its object grows, and shrinks by at most this fraction
    per frame (a box halves in about 14 s at 10 fps): detector size jitter never resizes it back and
    forth, and a receding object's box stays a little larger than needed, which only hides more."""
    fill_update: Fraction = 0.05
    """Per-frame weight of the new frame in a track's de-identified field (exponential average, a
    time constant of 2 s at 10 fps): a lighting change shows within a few seconds, frame-to-frame
    detail never."""
    redraw_levels: FloatIn(0, 255) = 4.0
    """A track's region is redrawn only when its averaged field has moved this many grey levels
    (mean absolute) from what is shown; in between the content stays pixel-identical. 4 levels is
    below what the eye notices on a blurred patch."""
    categories: list[str] = msgspec.field(default_factory=lambda: ["face", "plate"])
    """Sensitive categories whose original crops are sealed and sent to a functional platform. Every
    sensitive class is de-identified whether listed or not; a category left out keeps no crop."""
    recipients: dict[str, str] = {}
    """Category -> functional platform's X25519 public key file (``edged keygen platform``). The
    daemon refuses to start unless every category in ``categories`` has one (:func:`edged.core.keys.check_keys`)."""
    signing_key: str = "keys/device.key"
    """The device's Ed25519 signing key (``edged keygen device``), mode 0600; relative paths are
    relative to the working directory."""

    def __post_init__(self) -> None:
        from edged.core.classes import SENSITIVE_CLASSES

        for c in list(self.categories) + list(self.recipients):
            if c not in SENSITIVE_CLASSES:
                raise ValueError(f"{c!r} is not a sensitive category ({', '.join(sorted(SENSITIVE_CLASSES))})")


# --------------------------------------------------------------------------------------------- root
class Config(_Section):
    """The whole configuration tree."""

    device: DeviceConfig = msgspec.field(default_factory=DeviceConfig)
    camera: CameraConfig = msgspec.field(default_factory=CameraConfig)
    exposure: ExposureConfig = msgspec.field(default_factory=ExposureConfig)
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    output: OutputConfig = msgspec.field(default_factory=OutputConfig)
    detect: DetectConfig = msgspec.field(default_factory=DetectConfig)
    track: TrackConfig = msgspec.field(default_factory=TrackConfig)
    calibration: CalibrationConfig = msgspec.field(default_factory=CalibrationConfig)
    select: SelectConfig = msgspec.field(default_factory=SelectConfig)
    remote: RemoteConfig = msgspec.field(default_factory=RemoteConfig)
    systemd: SystemdConfig = msgspec.field(default_factory=SystemdConfig)
    outbox: OutboxConfig = msgspec.field(default_factory=OutboxConfig)
    uplink: UplinkConfig = msgspec.field(default_factory=UplinkConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    privacy: PrivacyConfig = msgspec.field(default_factory=PrivacyConfig)

    def __post_init__(self) -> None:
        tiling = self.detect.tiling
        if tiling.enabled:
            # the frame size is the configured one, else the largest the sensor gives
            w = self.camera.width or self.camera.sensor_size[0]
            h = self.camera.height or self.camera.sensor_size[1]
            xs, ys = tiling.origins(w, h)
            if len(xs) * len(ys) > MAX_TILES_PER_FRAME:
                raise ValueError(
                    f"detect.tiling: tile {tiling.tile[0]}x{tiling.tile[1]} with overlap {tiling.overlap:g} cuts a "
                    f"{w}x{h} frame into {len(xs) * len(ys)} tiles; at most {MAX_TILES_PER_FRAME} (use larger tiles)"
                )


_LOCATION = re.compile(r" - at (?P<key>`key` in )?`\$\.?(?P<path>[^`]*)`$")


def _friendly(err: msgspec.ValidationError) -> str:
    """Rewrite msgspec's message as ``config error at a.b.c: <what was expected>``."""
    text = str(err)
    m = _LOCATION.search(text)
    path = m.group("path") if m else ""
    what = text[: m.start()] if m else text
    if m and m.group("key"):
        what = f"{what} (a key of this table)"
    unknown = re.match(r"Object contains unknown field `(?P<key>[^`]+)`", what)
    if unknown:
        key = unknown.group("key")
        full = f"{path}.{key}" if path else key
        return f"config error at {full}: unknown key"
    what = what.replace("`", "")
    what = what[0].lower() + what[1:] if what else what
    missing = re.match(r"object missing required field (?P<key>\S+)", what)
    if missing:
        key = missing.group("key")
        return f"config error at {f'{path}.{key}' if path else key}: missing required key"
    return f"config error at {path or '(root)'}: {what}"


def from_dict(data: dict[str, Any]) -> Config:
    """Validate a plain mapping (parsed TOML or a remote JSON document) into a :class:`Config`."""
    try:
        return msgspec.convert(data, Config, strict=True)
    except msgspec.ValidationError as err:
        raise ConfigError(_friendly(err)) from None


def to_dict(config: Config) -> dict[str, Any]:
    """The config as plain builtins (round-trips through :func:`from_dict`)."""
    return msgspec.to_builtins(config)


MAX_CONFIG_BYTES = 1 << 20
"""A config file is a few kB; a larger one is a mistake (a log or an image named .toml)."""


def load(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a file") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is {len(raw)} bytes; a config is at most {MAX_CONFIG_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}, line {line})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply to be a config") from None
    try:
        return from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (ValueError, TypeError) as err:  # a section's own consistency check
        raise ConfigError(f"{path}: config error: {err}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply to be a config") from None


