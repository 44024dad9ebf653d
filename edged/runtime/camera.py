"""Build the configured camera backend. Each backend module is imported only when chosen, so a
machine without picamera2 or v4l2-ctl can still replay files.

Other backends come from installed packages through the ``edged.cameras`` entry points: the
simulation package ``edged-sim``, which a device does not install, provides ``fake`` there.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from edged.config import CameraConfig
from edged.hal.base import Camera, CameraError

PLUGIN_GROUP = "edged.cameras"
"""Entry-point group of camera backends from other packages: ``name = "module:factory"``, where
``factory(camera_cfg)`` returns a :class:`edged.hal.base.Camera`."""


def plugin_camera(camera_cfg: CameraConfig) -> Camera:
    """The camera an installed package provides for ``camera_cfg.backend``."""
    found = entry_points(group=PLUGIN_GROUP, name=camera_cfg.backend)
    if not found:
        raise CameraError(f"camera.backend = {camera_cfg.backend!r}: no installed package provides it "
                          "(the fake camera comes with the simulation package edged-sim; a device uses "
                          "file, picamera2 or v4l2)")
    entry = next(iter(found))
    try:
        factory = entry.load()
    except ImportError as err:
        raise CameraError(f"camera.backend = {camera_cfg.backend!r}: its package is installed but does not "
                          f"import ({entry.value}: {err})") from err
    return factory(camera_cfg)


def make_camera(camera_cfg: CameraConfig) -> Camera:
    """The :class:`edged.hal.base.Camera` that ``camera_cfg.backend`` names, configured but not started."""
    c = camera_cfg
    width, height = c.size_or_default()
    if c.backend == "file":
        from edged.hal.file import FileCamera

        return FileCamera(c.file.path, c.width, c.height, c.fps, loop=c.file.loop, realtime=c.file.realtime)
    if c.backend == "picamera2":
        from edged.hal.picamera2 import PiCamera

        return PiCamera(width, height, c.fps, camera_num=int(c.picamera2.camera_num))
    if c.backend == "v4l2":
        from edged.hal.v4l2 import V4l2Camera

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
    return plugin_camera(c)
