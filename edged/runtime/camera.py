"""Build the configured camera backend. Each backend module is imported only when chosen, so a
machine without picamera2 or v4l2-ctl can still replay files.

Other backends come from installed packages (:mod:`edged.config.plugins`): the simulation package
``edged-sim``, which a device does not install, provides ``fake``.
"""

from __future__ import annotations

from edged.config import CameraConfig, ConfigError
from edged.config.plugins import load_plugin
from edged.hal.base import Camera, CameraError


def plugin_camera(camera_cfg: CameraConfig) -> Camera:
    """The camera the installed plug-in ``camera_cfg.backend`` opens."""
    try:
        plugin = load_plugin(camera_cfg.backend)
    except ConfigError as err:
        raise CameraError(str(err)) from err
    return plugin.open(camera_cfg)


def make_camera(camera_cfg: CameraConfig) -> Camera:
    """The :class:`edged.hal.base.Camera` that ``camera_cfg.backend`` names, configured but not started."""
    c = camera_cfg
    width, height = c.size_or_default()
    if c.backend == "file":
        from edged.hal.file import FileCamera

        # unless configured, its width and height are the source's, known once the first frame is read
        return FileCamera(  # type: ignore[return-value]
            c.file.path, c.width, c.height, c.fps, loop=c.file.loop, realtime=c.file.realtime
        )
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
