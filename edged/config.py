"""The configuration tree: one TOML file loaded into typed, validated structs.

Every default lives here, next to the reason for it. A file only needs the keys it changes.
Errors name the key path and what was expected, e.g.
``config error at camera.fps: expected float >= 0.1, got str``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ConfigError(ValueError):
    """A config file could not be read or failed validation; the message names the key path."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: unknown keys are errors, not silently ignored."""


# --------------------------------------------------------------------------------------------- device
class PositionConfig(_Section):
    """Fixed camera position (WGS-84). A roadside unit does not move; a GPS source may override it."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] = 0.0
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] = 0.0
    alt: float = 0.0


class DeviceConfig(_Section):
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "rsu-0001"
    """Device name; used in MQTT topics, so limited to topic-safe characters."""
    data_dir: str = "data"
    """Persistent state (outbox, track-id counter, applied config). Relative paths are relative to
    the working directory."""
    position: PositionConfig = msgspec.field(default_factory=PositionConfig)


# --------------------------------------------------------------------------------------------- camera
class FakeCameraConfig(_Section):
    seed: int = 7
    """Scene seed: the same seed renders the same frames and ground truth."""
    realtime: bool = True
    """Pace capture at ``camera.fps`` on the wall clock; off renders as fast as the pipeline
    takes frames (tests, benchmarks, simulated runs)."""
    cars_per_minute: NonNegative = 24.0
    """About one car every 2.5 s: enough traffic that tracks overlap, few enough to count by eye."""
    people_per_minute: NonNegative = 12.0
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


class PiCameraConfig(_Section):
    camera_num: NonNegative = 0


class CameraConfig(_Section):
    backend: Literal["fake", "file", "picamera2", "v4l2"] = "fake"
    fps: Annotated[float, msgspec.Meta(ge=0.1, le=120)] = 10.0
    """SPEC S1 default. 10 fps sees a car at 50 km/h every 1.4 m: several frames per object in view."""
    width: Annotated[int, msgspec.Meta(ge=64, le=8192)] = 1280
    height: Annotated[int, msgspec.Meta(ge=64, le=8192)] = 720
    segment_s: Positive = 60.0
    """Length of a video segment: frames of one segment share a ``video_id`` and platforms store
    one file per segment."""
    fake: FakeCameraConfig = msgspec.field(default_factory=FakeCameraConfig)
    file: FileCameraConfig = msgspec.field(default_factory=FileCameraConfig)
    v4l2: V4l2CameraConfig = msgspec.field(default_factory=V4l2CameraConfig)
    picamera2: PiCameraConfig = msgspec.field(default_factory=PiCameraConfig)


# ------------------------------------------------------------------------------------------- exposure
class ExposureConfig(_Section):
    """The "meter and lock" rule of SPEC S1."""

    enabled: bool = True
    fixed_shutter_us: Annotated[float, msgspec.Meta(ge=10, le=1_000_000)] = 2000.0
    """T_fix. 2 ms: a car at 60 km/h moves 3.3 cm, under a pixel at typical roadside distances."""
    remeter_period_s: Positive = 60.0
    """Re-meter every minute: daylight changes slowly, and each re-meter costs a few auto frames."""
    settle_s: NonNegative = 1.0
    """How long AE runs before T and S are read; libcamera's AE converges in ~10-20 frames."""
    max_gain: Positive = 16.0
    """Upper clamp on the computed gain (the sensor's own range clamps too); above ~16x noise
    ruins plates at night, so the frame gets darker instead and the clamp is recorded."""


# ------------------------------------------------------------------------------------------- pipeline
class PipelineConfig(_Section):
    frame_queue: PositiveInt = 2
    """Frames waiting for detection. Small on purpose: when detection falls behind, the oldest
    frame is dropped (and counted) rather than latency growing."""
    result_queue: PositiveInt = 16
    stats_period_s: Positive = 5.0
    """How often the daemon logs its stats line (fps, per-stage ms, queue depths, drops)."""


class OutputConfig(_Section):
    dir: str = "out"
    """Local output folder for the demo: frames, run summary."""
    save_every: Annotated[int, msgspec.Meta(ge=0)] = 1
    """Write every n-th processed frame as JPEG (0: none)."""
    jpeg_quality: Annotated[int, msgspec.Meta(ge=10, le=100)] = 85


# -------------------------------------------------------------------------------------------- detect
class ModelConfig(_Section):
    name: str
    file: str
    """Path of the .tflite file; relative paths are relative to the working directory."""
    layout: Literal["ssd", "yolov5", "yolov8", "blazeface"]
    input_size: tuple[PositiveInt, PositiveInt]
    """Model input (width, height)."""
    labels: list[str]
    """Model output index -> edged class name ("" to ignore an output class)."""
    thresholds: dict[str, Fraction] = {}
    """Per-class score thresholds; classes not named use ``score_threshold``."""
    score_threshold: Fraction = 0.5
    nms_iou: Fraction = 0.45


class TilingConfig(_Section):
    enabled: bool = False
    tile: tuple[PositiveInt, PositiveInt] = (640, 640)
    overlap: Fraction = 0.2


class DetectConfig(_Section):
    enabled: bool = True
    threads: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    models: list[ModelConfig] = []
    tiling: TilingConfig = msgspec.field(default_factory=TilingConfig)


# --------------------------------------------------------------------------------------------- root
class Config(_Section):
    """The whole configuration tree."""

    device: DeviceConfig = msgspec.field(default_factory=DeviceConfig)
    camera: CameraConfig = msgspec.field(default_factory=CameraConfig)
    exposure: ExposureConfig = msgspec.field(default_factory=ExposureConfig)
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    output: OutputConfig = msgspec.field(default_factory=OutputConfig)
    detect: DetectConfig = msgspec.field(default_factory=DetectConfig)


_LOCATION = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def _friendly(err: msgspec.ValidationError) -> str:
    """Rewrite msgspec's message as ``config error at a.b.c: <what was expected>``."""
    text = str(err)
    m = _LOCATION.search(text)
    path = m.group("path") if m else ""
    what = text[: m.start()] if m else text
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


def load(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    return from_dict(data)


def resolve_path(value: str) -> Path:
    """Resolve a path from the config: absolute as is, else relative to the working directory."""
    p = Path(value)
    return p if p.is_absolute() else Path.cwd() / p
