"""``[camera]``: which frame source, at what rate and size, and each source's own keys.

The device ships ``picamera2`` (the default: a Raspberry Pi's camera module), ``v4l2`` (USB cameras)
and ``file`` (recordings); a plug-in backend brings its own ``[camera.NAME]`` section
(:mod:`edged.config.plugins`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from edged.config.base import Bounds, Section
from edged.config.plugins import BUILTIN_BACKENDS, check_backend, load_plugin


class FileCameraConfig(Section):
    path: str = ""
    """A video file or a folder of images (sorted by name)."""
    loop: bool = False
    realtime: bool = True
    """Replay at ``camera.fps`` on the wall clock; off replays as fast as the pipeline takes frames."""


class V4l2CameraConfig(Section):
    device: str = "/dev/video0"
    gain_unity_value: Annotated[int, Bounds(0, 1_000_000)] | None = None
    """Gain control value that means 1x. Unset: the control's minimum (drivers start at unity)."""
    gain_units_per_x: Annotated[float, Bounds(0.001, 10_000)] = 16.0
    """Gain control units per 1x of linear gain (gain = 1 + (value - unity) / units); 16 suits common
    OmniVision sensors, but V4L2 gives no scale, so set it for your camera."""


class PiCameraConfig(Section):
    camera_num: Annotated[int, Bounds(0, 7)] = 0


class CameraConfig(Section):
    backend: str = "picamera2"
    """``file``, ``picamera2`` or ``v4l2``, or a backend an installed package provides (``fake``: edged-sim)."""
    fps: Annotated[float, msgspec.Meta(ge=0.1, le=120)] = 10.0
    """Frames per second; 10 gives several frames of each car passing at 50 km/h."""
    width: Annotated[int, msgspec.Meta(ge=64, le=8192)] | None = None
    height: Annotated[int, msgspec.Meta(ge=64, le=8192)] | None = None
    """Frame size (px): unset, a file source keeps its own size and the others use ``DEFAULT_SIZE``;
    set both to resize (file, v4l2) or to pick the sensor mode (picamera2)."""
    sensor_size: tuple[Annotated[int, Bounds(64, 16_384)], Annotated[int, Bounds(64, 16_384)]] = (1920, 1080)
    """The sensor's native size (width, height): the frame that tiling is checked against when no size is set."""
    segment_s: Annotated[float, Bounds(1, 3600)] = 60.0
    """Length (s) of a video segment: its frames share a ``video_id`` and platforms store one file
    per segment."""
    file: FileCameraConfig = msgspec.field(default_factory=FileCameraConfig)
    DEFAULT_SIZE: ClassVar[tuple[int, int]] = (1280, 720)
    v4l2: V4l2CameraConfig = msgspec.field(default_factory=V4l2CameraConfig)
    picamera2: PiCameraConfig = msgspec.field(default_factory=PiCameraConfig)
    plugins: dict[str, Any] = msgspec.field(default_factory=dict)
    """Sections of plug-in backends by name, each of its plug-in's own type: ``[camera.NAME]`` in a file
    (the loader moves them here), present for every plug-in the config names."""

    def __post_init__(self) -> None:
        check_backend(self.backend)
        if self.backend not in BUILTIN_BACKENDS and self.backend not in self.plugins:
            self.plugins[self.backend] = load_plugin(self.backend).section()
        if (self.width is None) != (self.height is None):
            raise ValueError("set both width and height, or neither (the source's own size)")

    def plugin_section(self) -> Any:
        """The section of the plug-in ``backend`` names (its defaults when the file has no table for it)."""
        return self.plugins[self.backend]

    def size_or_default(self) -> tuple[int, int]:
        """The configured size, else ``DEFAULT_SIZE`` (what a sensor is asked for when unset)."""
        if self.width is None or self.height is None:
            return self.DEFAULT_SIZE
        return self.width, self.height
