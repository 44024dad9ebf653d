"""Raspberry Pi camera through Picamera2 (libcamera).

``picamera2`` is imported inside :meth:`PiCamera.start`, so this module loads on any machine; on a
Pi install it with ``sudo apt install python3-picamera2`` (a venv needs ``--system-site-packages``).

Stream: a video configuration of ``width x height`` in ``RGB888``, which Picamera2 lays out as
``[B, G, R]`` bytes per pixel, i.e. OpenCV's BGR order, so frames need no conversion.

Controls (units are libcamera's, the same as :class:`edged.hal.base.Camera`'s):

- auto:   ``{"AeEnable": True}``
- manual: ``{"AeEnable": False, "ExposureTime": <int µs>, "AnalogueGain": <float, 1.0 = unity>}``
  (newer Picamera2 maps ``AeEnable`` to libcamera's ``ExposureTimeMode``/``AnalogueGainMode``).

Per-frame exposure comes from each request's metadata: ``ExposureTime`` and ``AnalogueGain`` are
what the sensor used for *that* frame. Controls take a few frames to reach the sensor, so the mode
is also read per frame:

1. if the metadata carries ``ExposureTimeMode``/``AnalogueGainMode`` (libcamera >= 0.5; 1 = manual)
   or ``AeEnable``, that is the mode. libcamera may report these only on the frame where they
   change, so the last value seen is kept;
2. otherwise a frame is ``manual`` once, after a manual request, its metadata shows the requested
   shutter and gain (within :data:`SHUTTER_TOLERANCE` / :data:`GAIN_TOLERANCE`, the sensor's line
   time and gain-code quantisation), or :data:`APPLY_FRAMES` frames have passed (values the sensor
   could not reach exactly). After an auto request frames are ``auto`` at once (conservative: an
   auto frame is never taken as locked).

Ranges come from ``camera_controls["AnalogueGain"]`` and ``["ExposureTime"]`` (min, max, default);
the longest shutter is also capped by the frame period ``1/fps``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edged.core.types import CapturedImage, Exposure, ExposureMode
from edged.hal.base import CameraError, Pacing

SHUTTER_TOLERANCE = (0.02, 60.0)
"""A metadata shutter matches a request within 2 % or 60 µs (a few sensor lines)."""
GAIN_TOLERANCE = 0.05
"""A metadata gain matches within 5 %: sensor gain codes are that coarse near their top (IMX219)."""
APPLY_FRAMES = 12
"""Frames after which a manual request counts as applied even if the values never matched."""
MANUAL_MODE = 1
"""libcamera's ``ExposureTimeModeManual`` / ``AnalogueGainModeManual``."""


def _import_picamera2() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as err:
        raise CameraError(
            "picamera2 backend: the picamera2 library is not installed "
            "(Raspberry Pi OS: sudo apt install python3-picamera2; a venv needs --system-site-packages)"
        ) from err
    return Picamera2


def wall_time(sensor_timestamp_ns: int | None, now: float | None = None) -> float:
    """Wall-clock time of a frame from libcamera's ``SensorTimestamp``.

    The sensor timestamp counts on the kernel's monotonic clock (V4L2 buffer time) or, on some
    builds, the boot clock; the first that puts the frame at most 2 s in the past is used.
    Without one, the time of the call.
    """
    now = time.time() if now is None else now
    if sensor_timestamp_ns is None:
        return now
    for clock in (time.CLOCK_MONOTONIC, time.CLOCK_BOOTTIME):
        age = (time.clock_gettime_ns(clock) - int(sensor_timestamp_ns)) / 1e9
        if 0.0 <= age <= 2.0:
            return now - age
    return now


class PiCamera:
    """A Raspberry Pi camera module as a :class:`edged.hal.base.Camera`."""

    pacing = Pacing.SENSOR

    def __init__(self, width: int, height: int, fps: float, camera_num: int = 0) -> None:
        self.width, self.height, self.fps, self.camera_num = width, height, fps, int(camera_num)
        self.gain_range: tuple[float, float] = (1.0, 16.0)
        self.shutter_range_us: tuple[float, float] = (1.0, 1e6 / fps)
        self._cam: Any = None
        self._requested: Exposure = Exposure(ExposureMode.AUTO, 0.0, 0.0)
        self._frames_since_request = 0
        self._manual_applied = False
        self._reported_mode: ExposureMode | None = None
        self._last: Exposure | None = None

    # ------------------------------------------------------------------------------ lifecycle
    def probe(self) -> Any:
        """The camera stack imports and lists this camera (not opened); returns ``Picamera2``."""
        picamera2 = _import_picamera2()
        try:
            cameras = picamera2.global_camera_info()
        except Exception as err:  # libcamera failing to enumerate is a camera fault
            raise CameraError(f"picamera2 backend: cannot list cameras: {err}") from err
        if self.camera_num >= len(cameras):
            raise CameraError(
                f"picamera2 backend: camera {self.camera_num} not found ({len(cameras)} camera(s) attached)"
            )
        return picamera2

    def start(self) -> None:
        picamera2 = self.probe()
        try:
            cam = picamera2(self.camera_num)
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": float(self.fps)},
            )
            cam.configure(config)
            self._read_ranges(cam.camera_controls)
            cam.set_controls({"AeEnable": True})
            cam.start()
        except CameraError:
            raise
        except Exception as err:
            raise CameraError(f"picamera2 backend: cannot start camera {self.camera_num}: {err}") from err
        self._cam = cam
        self._request(Exposure(ExposureMode.AUTO, 0.0, 0.0))

    def _read_ranges(self, controls: dict[str, Any]) -> None:
        try:
            gmin, gmax = controls["AnalogueGain"][:2]
            tmin, tmax = controls["ExposureTime"][:2]
        except (KeyError, TypeError, ValueError) as err:
            raise CameraError(f"picamera2 backend: camera reports no AnalogueGain/ExposureTime range: {err}") from err
        self.gain_range = (float(gmin), float(gmax))
        self.shutter_range_us = (float(tmin), float(min(tmax, 1e6 / self.fps)))

    def stop(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()

    def _camera(self) -> Any:
        if self._cam is None:
            raise CameraError("picamera2 backend: camera not started")
        return self._cam

    # -------------------------------------------------------------------------------- frames
    def capture(self) -> CapturedImage:
        request = self._camera().capture_request()
        try:
            pixels = np.ascontiguousarray(request.make_array("main")[:, :, :3])
            metadata = request.get_metadata()
        finally:
            request.release()
        exposure = self.exposure_from_metadata(metadata)
        return CapturedImage(pixels=pixels, exposure=exposure, timestamp=wall_time(metadata.get("SensorTimestamp")))

    def exposure_from_metadata(self, metadata: dict[str, Any]) -> Exposure:
        """The exposure in effect for the frame this metadata belongs to (advances per-frame state)."""
        try:
            shutter = float(metadata["ExposureTime"])
            gain = float(metadata["AnalogueGain"])
        except KeyError as err:
            raise CameraError(f"picamera2 backend: frame metadata lacks {err.args[0]}") from None
        self._frames_since_request += 1
        reported = self._reported(metadata)
        if reported is not None:
            self._reported_mode = reported
        if self._reported_mode is not None:
            mode = self._reported_mode
        elif self._requested.mode is ExposureMode.AUTO:
            mode = ExposureMode.AUTO
        else:
            if not self._manual_applied:
                self._manual_applied = self._matches(shutter, gain) or self._frames_since_request >= APPLY_FRAMES
            mode = ExposureMode.MANUAL if self._manual_applied else ExposureMode.AUTO
        self._last = Exposure(mode, shutter, gain)
        return self._last

    @staticmethod
    def _reported(metadata: dict[str, Any]) -> ExposureMode | None:
        modes = [metadata[k] for k in ("ExposureTimeMode", "AnalogueGainMode") if k in metadata]
        if modes:
            return ExposureMode.MANUAL if all(int(m) == MANUAL_MODE for m in modes) else ExposureMode.AUTO
        if "AeEnable" in metadata:
            return ExposureMode.AUTO if metadata["AeEnable"] else ExposureMode.MANUAL
        return None

    def _matches(self, shutter: float, gain: float) -> bool:
        want = self._requested
        rel, absolute = SHUTTER_TOLERANCE
        return (
            abs(shutter - want.shutter_us) <= max(rel * want.shutter_us, absolute)
            and abs(gain - want.gain) <= GAIN_TOLERANCE * want.gain
        )

    # ------------------------------------------------------------------------------ exposure
    def _request(self, exposure: Exposure) -> None:
        self._requested = exposure
        self._frames_since_request = 0
        self._manual_applied = False

    def manual_controls(self, shutter_us: float, gain: float) -> dict[str, Any]:
        """The libcamera controls that lock exposure, clamped to the sensor's ranges."""
        tmin, tmax = self.shutter_range_us
        gmin, gmax = self.gain_range
        return {
            "AeEnable": False,
            "ExposureTime": int(round(min(max(shutter_us, tmin), tmax))),
            "AnalogueGain": float(min(max(gain, gmin), gmax)),
        }

    def set_auto_exposure(self) -> None:
        self._camera().set_controls({"AeEnable": True})
        self._request(Exposure(ExposureMode.AUTO, 0.0, 0.0))

    def set_manual_exposure(self, shutter_us: float, gain: float) -> None:
        if not (shutter_us > 0 and gain > 0):
            raise CameraError(f"picamera2 backend: shutter and gain must be positive, got {shutter_us} us, {gain}")
        controls = self.manual_controls(shutter_us, gain)
        self._camera().set_controls(controls)
        self._request(Exposure(ExposureMode.MANUAL, float(controls["ExposureTime"]), controls["AnalogueGain"]))

    def read_exposure(self) -> Exposure:
        """The exposure of the next completed frame (waits for its metadata)."""
        return self.exposure_from_metadata(self._camera().capture_metadata())
