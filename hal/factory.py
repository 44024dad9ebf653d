"""Build the configured camera backend. Each backend module is imported only when chosen, so a
machine without picamera2 or v4l2-ctl can still run the fake and file sources."""

from __future__ import annotations

from edged.config import CameraConfig
from hal.base import Camera, CameraError


def make_camera(camera_cfg: CameraConfig) -> Camera:
    """The :class:`hal.base.Camera` that ``camera_cfg.backend`` names, configured but not started."""
    c = camera_cfg
    width, height = c.size_or_default()
    if c.backend == "fake":
        from hal.fake import FakeCamera

        f = c.fake
        return FakeCamera(
            width=width,
            height=height,
            fps=c.fps,
            seed=f.seed,
            cars_per_minute=f.cars_per_minute,
            people_per_minute=f.people_per_minute,
            events=f.events,
        )
    if c.backend == "file":
        from hal.file import FileCamera

        return FileCamera(c.file.path, c.width, c.height, c.fps, loop=c.file.loop)
    if c.backend == "picamera2":
        from hal.picamera2 import PiCamera

        return PiCamera(width, height, c.fps, camera_num=int(c.picamera2.camera_num))
    if c.backend == "v4l2":
        from hal.v4l2 import V4l2Camera

        v = c.v4l2
        return V4l2Camera(
            v.device,
            width,
            height,
            c.fps,
            gain_unity_value=v.gain_unity_value,
            gain_units_per_x=v.gain_units_per_x,
            resize=c.width is not None,
        )
    raise CameraError(f"unknown camera backend {c.backend!r} (expected fake, file, picamera2 or v4l2)")
