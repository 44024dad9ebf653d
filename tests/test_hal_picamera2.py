"""Picamera2 backend against a stand-in ``picamera2`` module (no Pi camera is attached here).

The stand-in behaves like libcamera where it matters to edged: controls reach the sensor a few
frames after ``set_controls``, the sensor quantises shutter to line times and gain to gain codes,
and metadata reports what each frame really used.
"""

from __future__ import annotations

import sys
import time
import types
from typing import Any

import numpy as np
import pytest

from edged.core.types import ExposureMode
from edged.hal.base import Camera, CameraError
from edged.hal.picamera2 import APPLY_FRAMES, PiCamera, wall_time

LINE_US = 18.9  # IMX219-like line time
LATENCY = 3  # frames between set_controls and the sensor using the values
AUTO_T, AUTO_G = 8000, 2.5


def quantise_gain(g: float) -> float:
    """IMX219 analogue gain = 256 / (256 - code), code integer."""
    code = round(256 - 256 / g)
    return 256 / (256 - code)


class StandInRequest:
    def __init__(self, pixels: np.ndarray, metadata: dict[str, Any]) -> None:
        self.pixels, self.metadata, self.released = pixels, metadata, False

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main" and not self.released
        return self.pixels.copy()

    def get_metadata(self) -> dict[str, Any]:
        return dict(self.metadata)

    def release(self) -> None:
        self.released = True


class StandInPicamera2:
    cameras: list[dict[str, Any]] = [{"Model": "imx219", "Num": 0}]
    report_modes = False  # report ExposureTimeMode/AnalogueGainMode on the frame where they change
    instances: list[StandInPicamera2] = []

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return StandInPicamera2.cameras

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.camera_controls = {"AnalogueGain": (1.0, 10.666, 1.0), "ExposureTime": (13, 11_766_488, 20_000)}
        self.log: list[dict[str, Any]] = []
        self.pending: list[tuple[int, dict[str, Any]]] = []
        self.state: dict[str, Any] = {"AeEnable": True}
        self.frame = 0
        self.started = self.closed = False
        self.config: dict[str, Any] | None = None
        self.last_mode: int | None = None
        StandInPicamera2.instances.append(self)

    def create_video_configuration(self, main: dict[str, Any], controls: dict[str, Any]) -> dict[str, Any]:
        return {"main": dict(main), "controls": dict(controls)}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def set_controls(self, controls: dict[str, Any]) -> None:
        self.log.append(dict(controls))
        self.pending.append((self.frame + LATENCY, dict(controls)))

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def _next_metadata(self) -> dict[str, Any]:
        assert self.started
        for due, controls in [p for p in self.pending if p[0] <= self.frame]:
            self.state.update(controls)
            self.pending.remove((due, controls))
        self.frame += 1
        if self.state["AeEnable"]:
            t, g = AUTO_T + 10 * (self.frame % 3), AUTO_G
        else:
            t = round(self.state["ExposureTime"] / LINE_US) * LINE_US
            g = quantise_gain(self.state["AnalogueGain"])
        md: dict[str, Any] = {"ExposureTime": int(t), "AnalogueGain": g, "DigitalGain": 1.0, "AeLocked": True}
        mode = 0 if self.state["AeEnable"] else 1
        if self.report_modes and mode != self.last_mode:
            md["ExposureTimeMode"] = md["AnalogueGainMode"] = mode
        self.last_mode = mode
        md["SensorTimestamp"] = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - 30_000_000
        return md

    def capture_request(self) -> StandInRequest:
        metadata = self._next_metadata()
        w, h = self.config["main"]["size"]
        pixels = np.zeros((h, w, 4), np.uint8)  # a padding byte, as XBGR8888 buffers carry
        pixels[..., 0], pixels[..., 1], pixels[..., 2] = 10, 20, self.frame % 256
        return StandInRequest(pixels, metadata)

    def capture_metadata(self) -> dict[str, Any]:
        return self._next_metadata()


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch) -> type[StandInPicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(StandInPicamera2, "cameras", [{"Model": "imx219", "Num": 0}])
    monkeypatch.setattr(StandInPicamera2, "report_modes", False)
    StandInPicamera2.instances.clear()
    return StandInPicamera2


def started(fps: float = 10.0) -> tuple[PiCamera, StandInPicamera2]:
    cam = PiCamera(320, 240, fps)
    cam.start()
    return cam, StandInPicamera2.instances[-1]


def test_configuration_ranges_and_start_controls(picamera2: type[StandInPicamera2]) -> None:
    cam, dev = started(fps=25.0)
    assert isinstance(cam, Camera)
    assert dev.config == {"main": {"size": (320, 240), "format": "RGB888"}, "controls": {"FrameRate": 25.0}}
    assert dev.log == [{"AeEnable": True}]
    assert cam.gain_range == (1.0, 10.666)
    assert cam.shutter_range_us == (13.0, 40_000.0)  # capped by the 25 fps frame period
    frame = cam.capture()
    assert frame.pixels.shape == (240, 320, 3) and frame.pixels.flags.c_contiguous
    assert tuple(frame.pixels[0, 0]) == (10, 20, 1)  # BGR bytes passed through unchanged
    assert abs(frame.timestamp - (time.time() - 0.03)) < 0.02
    cam.stop()
    assert dev.closed and not dev.started
    cam.stop()


def test_manual_and_auto_control_dicts_are_exact(picamera2: type[StandInPicamera2]) -> None:
    cam, dev = started()
    assert cam.manual_controls(2000.4, 3.3) == {"AeEnable": False, "ExposureTime": 2000, "AnalogueGain": 3.3}
    assert cam.manual_controls(5e6, 50.0) == {"AeEnable": False, "ExposureTime": 100_000, "AnalogueGain": 10.666}
    assert cam.manual_controls(1.0, 0.2) == {"AeEnable": False, "ExposureTime": 13, "AnalogueGain": 1.0}
    cam.set_manual_exposure(2000.0, 4.0)
    cam.set_auto_exposure()
    assert dev.log == [
        {"AeEnable": True},
        {"AeEnable": False, "ExposureTime": 2000, "AnalogueGain": 4.0},
        {"AeEnable": True},
    ]
    assert all(type(d["ExposureTime"]) is int for d in dev.log[1:2])
    with pytest.raises(CameraError, match="must be positive"):
        cam.set_manual_exposure(-1.0, 2.0)


def test_per_frame_mode_follows_metadata_values(picamera2: type[StandInPicamera2]) -> None:
    cam, _ = started()
    auto = [cam.capture().exposure for _ in range(4)]
    assert all(e.mode is ExposureMode.AUTO for e in auto)
    assert {(e.shutter_us, e.gain) for e in auto} <= {(AUTO_T + d, AUTO_G) for d in (0, 10, 20)}
    cam.set_manual_exposure(2000.0, 5.0)
    after = [cam.capture().exposure for _ in range(LATENCY + 3)]
    # Frames already in flight used the AE values and say so; then the locked values, as quantised.
    assert [e.mode for e in after] == [ExposureMode.AUTO] * LATENCY + [ExposureMode.MANUAL] * 3
    assert all(e.gain == AUTO_G for e in after[:LATENCY])
    locked = after[-1]
    assert locked.shutter_us == int(round(2000 / LINE_US) * LINE_US) and locked.gain == quantise_gain(5.0)
    cam.set_auto_exposure()
    assert cam.capture().exposure.mode is ExposureMode.AUTO  # conservative: never "locked" after asking for AE
    assert cam.read_exposure().mode is ExposureMode.AUTO


def test_unreachable_manual_values_count_as_applied_after_a_bound(picamera2: type[StandInPicamera2]) -> None:
    cam, dev = started()
    cam.set_manual_exposure(2000.0, 5.0)
    dev.pending.clear()  # the sensor never takes the request (e.g. out of its mode's limits)
    modes = [cam.capture().exposure.mode for _ in range(APPLY_FRAMES)]
    assert modes == [ExposureMode.AUTO] * (APPLY_FRAMES - 1) + [ExposureMode.MANUAL]


def test_reported_mode_metadata_wins_and_is_sticky(picamera2: type[StandInPicamera2]) -> None:
    picamera2.report_modes = True
    cam, _ = started()
    assert cam.capture().exposure.mode is ExposureMode.AUTO
    cam.set_manual_exposure(2000.0, 2.0)
    modes = [cam.capture().exposure.mode for _ in range(LATENCY + 4)]
    assert modes == [ExposureMode.AUTO] * LATENCY + [ExposureMode.MANUAL] * 4  # keys appear once, on the change
    cam.set_auto_exposure()
    modes = [cam.capture().exposure.mode for _ in range(LATENCY + 2)]
    # libcamera says the in-flight frames were still manual: that is what was in effect.
    assert modes == [ExposureMode.MANUAL] * LATENCY + [ExposureMode.AUTO] * 2


def test_missing_library_and_missing_camera(monkeypatch: pytest.MonkeyPatch, picamera2: type[StandInPicamera2]) -> None:
    picamera2.cameras = []
    with pytest.raises(CameraError, match=r"camera 0 not found \(0 camera\(s\) attached\)"):
        PiCamera(320, 240, 10.0).start()
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as on a machine without it
    with pytest.raises(CameraError, match="picamera2 library is not installed"):
        PiCamera(320, 240, 10.0).start()
    with pytest.raises(CameraError, match="not started"):
        PiCamera(320, 240, 10.0).capture()


def test_metadata_without_exposure_is_an_error(picamera2: type[StandInPicamera2]) -> None:
    cam, _ = started()
    with pytest.raises(CameraError, match="lacks ExposureTime"):
        cam.exposure_from_metadata({"AnalogueGain": 1.0})


def test_wall_time_from_sensor_timestamp() -> None:
    now = time.time()
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    assert wall_time(mono - 250_000_000, now) == pytest.approx(now - 0.25, abs=0.01)
    assert wall_time(None, now) == now
    assert wall_time(mono + 10_000_000_000, now) == now  # implausible: fall back to the call time
