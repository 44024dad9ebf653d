"""The configuration tree: one TOML file loaded into typed, validated structs, one module per section.

``edged.config.camera`` holds ``[camera]`` and so on (``base``: the building blocks; ``broker``: the MQTT keys
the links share); this module holds the root and the loader and re-exports every section. Why each default:
``docs/TUNING.md``, by key. A file only needs the keys it changes; errors name the key path, e.g.
``config error at camera.fps: expected float >= 0.1, got str``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec

from edged.config.base import Bounds, ConfigError, Fraction, Section
from edged.config.broker import BrokerConfig
from edged.config.calibration import CalibrationConfig
from edged.config.camera import CameraConfig, FileCameraConfig, PiCameraConfig, V4l2CameraConfig
from edged.config.detect import (
    COCO_LABELS,
    MAX_TILES_PER_FRAME,
    DetectConfig,
    ModelConfig,
    ScanConfig,
    TilingConfig,
    default_models,
)
from edged.config.device import DeviceConfig, PositionConfig
from edged.config.exposure import ExposureConfig
from edged.config.health import HealthConfig
from edged.config.outbox import OutboxConfig
from edged.config.output import OutputConfig
from edged.config.pipeline import PipelineConfig
from edged.config.plugins import BUILTIN_BACKENDS, check_backend, load_plugin
from edged.config.privacy import PrivacyConfig
from edged.config.remote import MqttRemoteConfig, RemoteAuthConfig, RemoteConfig, SerialRemoteConfig
from edged.config.select import SelectConfig
from edged.config.systemd import SystemdConfig
from edged.config.track import TrackConfig
from edged.config.uplink import UplinkBrokerConfig, UplinkConfig
from edged.core.paths import SHIPPED_MODELS, model_file, resolve_path
from edged.core.validation import problem

__all__ = [
    "COCO_LABELS", "MAX_CONFIG_BYTES", "MAX_TILES_PER_FRAME", "Bounds", "BrokerConfig", "CalibrationConfig",
    "CameraConfig", "Config", "ConfigError", "DetectConfig", "DeviceConfig", "ExposureConfig", "FileCameraConfig",
    "Fraction", "HealthConfig", "ModelConfig", "MqttRemoteConfig", "OutboxConfig", "OutputConfig",
    "PiCameraConfig", "PipelineConfig", "PositionConfig", "PrivacyConfig", "RemoteAuthConfig", "RemoteConfig",
    "ScanConfig", "Section", "SelectConfig", "SerialRemoteConfig", "SystemdConfig", "TilingConfig", "TrackConfig",
    "UplinkBrokerConfig", "UplinkConfig", "V4l2CameraConfig", "default_models", "from_dict", "load", "resolve_path",
    "to_dict",
]


class Config(Section):
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


def _friendly(err: msgspec.ValidationError, prefix: str = "") -> str:
    """Rewrite msgspec's message as ``config error at a.b.c: <what was expected>`` (``prefix``: the
    validated value's own path, for a section checked on its own)."""
    p = problem(err, prefix)
    if p.unknown is not None:
        return f"config error at {p.unknown}: unknown key"
    if p.missing is not None:
        return f"config error at {p.missing}: missing required key"
    what = f"{p.what} (a key of this table)" if p.on_key else p.what
    return f"config error at {p.path or '(root)'}: {what}"


def from_dict(data: dict[str, Any]) -> Config:
    """Validate a plain mapping (parsed TOML or a remote JSON document) into a :class:`Config`."""
    try:
        return msgspec.convert(_with_plugin_sections(data), Config, strict=True)
    except msgspec.ValidationError as err:
        raise ConfigError(_friendly(err)) from None


CAMERA_KEYS = frozenset(f.name for f in msgspec.structs.fields(CameraConfig)) - {"plugins"}
"""The keys of ``[camera]`` itself; any other table in it is a plug-in backend's section."""


def _with_plugin_sections(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each plug-in's ``[camera.NAME]`` table validated by its plug-in and moved into
    ``camera.plugins``, and the section of a plug-in ``camera.backend`` names added when absent."""
    camera = data.get("camera") if isinstance(data, dict) else None
    if not isinstance(camera, dict):
        return data  # not a table: the struct validation says so
    own = {k: v for k, v in camera.items() if k in CAMERA_KEYS}
    sections: dict[str, Any] = {}
    for name, table in camera.items():
        if name in own:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"config error at camera.{name}: unknown key")
        sections[name] = _plugin_section(name, table)
    backend = own.get("backend")
    if isinstance(backend, str):
        check_backend(backend)
        if backend not in BUILTIN_BACKENDS and backend not in sections:
            sections[backend] = _plugin_section(backend, {})
    return {**data, "camera": {**own, "plugins": sections}}


def _plugin_section(name: str, table: dict[str, Any]) -> Section:
    """``[camera.NAME]`` validated into the section type of the plug-in ``name``."""
    section = load_plugin(name).section
    try:
        return msgspec.convert(table, section, strict=True)
    except msgspec.ValidationError as err:
        raise ConfigError(_friendly(err, f"camera.{name}")) from None


def to_dict(config: Config) -> dict[str, Any]:
    """The config as plain builtins, each plug-in section as ``camera.NAME`` (round-trips through :func:`from_dict`)."""
    data = msgspec.to_builtins(config)
    camera = data["camera"]
    camera.update(camera.pop("plugins"))
    return data


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
        config = from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (ValueError, TypeError) as err:  # a section's own consistency check
        raise ConfigError(f"{path}: config error: {err}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply to be a config") from None
    anchor_model_files(config, path.parent.absolute())
    return config


def anchor_model_files(config: Config, folder: Path) -> None:
    """Make each relative model ``file`` absolute in ``folder`` (the config file's), as
    :func:`edged.core.paths.model_file` finds it; one that names a shipped model stays ``models/NAME``."""
    for model in config.detect.models:
        found = model_file(model.file, folder)
        if not found.is_relative_to(SHIPPED_MODELS):
            model.file = str(found)
