"""A V4L2 camera (USB/UVC webcam, CSI sensor driver): frames through OpenCV, exposure through
the V4L2 control interface driven by ``v4l2-ctl`` (Debian/Raspberry Pi OS package ``v4l-utils``).

``v4l2-ctl`` was chosen over an ioctl binding: no Python dependency, present on every Pi image, and
it names controls the way the kernel does. Controls change rarely (a few times a minute), so a
subprocess per change costs nothing that matters.

Control names differ by kernel: the older names are tried after the newer ones.

- mode: ``auto_exposure`` / ``exposure_auto`` (menu): ``1`` = manual; auto is ``0`` (full auto)
  when the driver's menu offers it, else ``3`` (aperture priority, what UVC cameras offer).
- shutter: ``exposure_time_absolute`` / ``exposure_absolute`` in **100 µs units**:
  ``shutter_us = value * 100``; a request is rounded to the nearest unit and clamped to the
  control's range (2 ms = 20).
- gain: ``analogue_gain`` / ``gain``, in driver units with no standard scale. edged uses the affine
  map ``gain = 1 + (value - unity_value) / units_per_x`` (config ``camera.v4l2.gain_unity_value``,
  default the control's minimum, and ``camera.v4l2.gain_units_per_x``, default 16: the 1/16 steps of
  common OmniVision sensors where 16 = 1x). A device without a gain control reports gain 1.0.
- while manual, ``exposure_dynamic_framerate`` / ``exposure_auto_priority`` are set to 0 when
  present so the driver cannot lower the frame rate behind edged's back.

Per-frame exposure: V4L2 has no per-frame metadata. Frames report the values last read back from
the driver; after a manual request the first :attr:`V4l2Camera.settle_frames` frames (the buffers
already queued when the request was made) are marked ``auto``. While auto, the driver's values
are re-read at most every ``auto_readback_s`` (many UVC cameras report the AE-chosen exposure there;
some report only the last manual value: a driver limit edged cannot see past).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edged.core.types import CapturedImage, Exposure, ExposureMode
from edged.hal.base import CameraError, Pacing

MODE_CONTROLS = ("auto_exposure", "exposure_auto")
SHUTTER_CONTROLS = ("exposure_time_absolute", "exposure_absolute")
GAIN_CONTROLS = ("analogue_gain", "gain")
FRAMERATE_PRIORITY_CONTROLS = ("exposure_dynamic_framerate", "exposure_auto_priority")
MANUAL = 1
AUTO_FULL = 0
AUTO_APERTURE_PRIORITY = 3
SHUTTER_UNIT_US = 100.0


@dataclass(slots=True)
class Control:
    """One V4L2 control as ``v4l2-ctl --list-ctrls-menus`` describes it."""

    name: str
    kind: str
    minimum: int = 0
    maximum: int = 0
    step: int = 1
    default: int = 0
    value: int = 0
    flags: str = ""
    menu: dict[int, str] = field(default_factory=dict)


_CONTROL_LINE = re.compile(
    r"^\s*(?P<name>[a-z0-9_]+)\s+(?:0x[0-9a-f]+\s+)?\((?P<kind>[a-z0-9 ]+)\)\s*:\s*(?P<rest>.*)$"
)
_MENU_LINE = re.compile(r"^\s*(?P<index>-?\d+):\s*(?P<label>.*\S)\s*$")
_FIELD = re.compile(r"(?P<key>[a-z_]+)=(?P<value>\S+)")


def parse_controls(text: str) -> dict[str, Control]:
    """Parse ``v4l2-ctl --list-ctrls-menus`` output (old and new formats) into controls by name."""
    controls: dict[str, Control] = {}
    last: Control | None = None
    for line in text.splitlines():
        m = _CONTROL_LINE.match(line)
        if m:
            fields = {f["key"]: f["value"] for f in _FIELD.finditer(m["rest"])}
            ints = {k: int(v, 0) for k, v in fields.items() if k != "flags" and re.fullmatch(r"-?(0x)?[0-9a-f]+", v)}
            last = Control(
                name=m["name"],
                kind=m["kind"].strip(),
                minimum=ints.get("min", 0),
                maximum=ints.get("max", 1 if m["kind"].strip() == "bool" else 0),
                step=ints.get("step", 1),
                default=ints.get("default", 0),
                value=ints.get("value", 0),
                flags=fields.get("flags", ""),
            )
            controls[last.name] = last
            continue
        m = _MENU_LINE.match(line)
        if m and last is not None and "menu" in last.kind:
            last.menu[int(m["index"])] = m["label"]
    return controls


class ControlLayer(Protocol):
    """Reads and writes V4L2 controls of one device."""

    def list(self) -> dict[str, Control]: ...

    def get(self, names: Sequence[str]) -> dict[str, int]: ...

    def set(self, values: Mapping[str, int]) -> None: ...


class V4l2Ctl:
    """:class:`ControlLayer` through the ``v4l2-ctl`` command."""

    def __init__(self, device: str, executable: str = "v4l2-ctl", timeout_s: float = 5.0) -> None:
        self.device, self.timeout_s = device, timeout_s
        found = shutil.which(executable)
        if found is None:
            raise CameraError(
                f"v4l2 backend: '{executable}' not found; install it (Debian/Raspberry Pi OS: apt install v4l-utils)"
            )
        self.executable = found

    def _run(self, *args: str) -> str:
        cmd = [self.executable, "-d", self.device, *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise CameraError(f"v4l2 backend: {' '.join(cmd)} did not answer in {self.timeout_s:g} s") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            raise CameraError(f"v4l2 backend: {' '.join(cmd[1:])} failed: {why}")
        return done.stdout

    def list(self) -> dict[str, Control]:
        return parse_controls(self._run("--list-ctrls-menus"))

    def get(self, names: Sequence[str]) -> dict[str, int]:
        out = self._run(f"--get-ctrl={','.join(names)}")
        values: dict[str, int] = {}
        for line in out.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() in names:
                values[name.strip()] = int(value.split()[0], 0)
        missing = [n for n in names if n not in values]
        if missing:
            raise CameraError(f"v4l2 backend: {self.device} did not report {', '.join(missing)}")
        return values

    def set(self, values: Mapping[str, int]) -> None:
        if values:
            self._run("--set-ctrl=" + ",".join(f"{k}={int(v)}" for k, v in values.items()))


def nearest(x: float) -> int:
    """Round half up (2050 µs -> 21 units), not Python's half-to-even."""
    return int(math.floor(x + 0.5))


def _first(controls: Mapping[str, Control], names: tuple[str, ...]) -> Control | None:
    return next((controls[n] for n in names if n in controls), None)


class GainMap:
    """Driver gain units <-> linear gain: ``gain = 1 + (value - unity_value) / units_per_x``."""

    def __init__(self, control: Control | None, unity_value: int | None, units_per_x: float) -> None:
        if units_per_x <= 0:
            raise CameraError(f"v4l2 backend: gain_units_per_x must be positive, got {units_per_x}")
        self.control = control
        self.units_per_x = units_per_x
        self.unity = (control.minimum if unity_value is None else unity_value) if control else 0

    def to_gain(self, value: int) -> float:
        return 1.0 + (value - self.unity) / self.units_per_x if self.control else 1.0

    def to_value(self, gain: float) -> int:
        assert self.control is not None
        value = nearest(self.unity + (gain - 1.0) * self.units_per_x)
        return min(max(value, self.control.minimum), self.control.maximum)

    @property
    def range(self) -> tuple[float, float]:
        if self.control is None:
            return (1.0, 1.0)
        return (max(self.to_gain(self.control.minimum), 1.0 / self.units_per_x), self.to_gain(self.control.maximum))


def open_opencv(device: str, width: int, height: int, fps: float) -> Any:
    """An OpenCV V4L2 capture of ``device`` asking for ``width x height`` at ``fps`` (MJPG when offered)."""
    import cv2

    cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
    if not cap.isOpened():
        cap.release()
        raise CameraError(f"v4l2 backend: OpenCV cannot open {device}")
    cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    cap.set(cv2.CAP_PROP_FPS, fps)
    return cap


class V4l2Camera:
    """A V4L2 device as a :class:`edged.hal.base.Camera`.

    ``controls`` and ``opener`` default to ``v4l2-ctl`` and OpenCV on ``device``; tests pass
    stand-ins (no camera is attached to a build machine).
    """

    pacing = Pacing.SENSOR

    def __init__(
        self,
        device: str,
        width: int,
        height: int,
        fps: float,
        gain_unity_value: int | None = None,
        gain_units_per_x: float = 16.0,
        controls: ControlLayer | None = None,
        opener: Callable[[str, int, int, float], Any] = open_opencv,
        settle_frames: int = 4,
        auto_readback_s: float = 0.5,
        clock: Callable[[], float] = time.time,
        resize: bool = True,
    ) -> None:
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.resize = resize
        """False: frames keep the size the device delivers (``width x height`` is only requested)."""
        self._gain_unity_value, self._gain_units_per_x = gain_unity_value, gain_units_per_x
        self._controls = controls
        self._opener = opener
        self.settle_frames, self.auto_readback_s, self._clock = settle_frames, auto_readback_s, clock
        self.gain_range: tuple[float, float] = (1.0, 1.0)
        self.shutter_range_us: tuple[float, float] = (SHUTTER_UNIT_US, SHUTTER_UNIT_US)
        self._cap: Any = None
        self._mode_ctl: Control | None = None
        self._shutter_ctl: Control | None = None
        self._priority_ctl: Control | None = None
        self._gain = GainMap(None, None, gain_units_per_x)
        self._exposure = Exposure(ExposureMode.AUTO, 0.0, 1.0)
        self._pending_frames = 0
        self._last_readback = -float("inf")

    # ------------------------------------------------------------------------------ lifecycle
    def probe(self) -> None:
        """The device and the control tool are there (the device is not opened)."""
        if not Path(self.device).exists():
            raise CameraError(f"v4l2 backend: device {self.device} does not exist")
        if self._controls is None:
            self._controls = V4l2Ctl(self.device)

    def start(self) -> None:
        self.probe()
        assert self._controls is not None
        found = self._controls.list()
        self._mode_ctl = _first(found, MODE_CONTROLS)
        self._shutter_ctl = _first(found, SHUTTER_CONTROLS)
        if self._mode_ctl is None or self._shutter_ctl is None:
            raise CameraError(
                f"v4l2 backend: {self.device} has no manual exposure controls "
                f"(needs one of {MODE_CONTROLS} and one of {SHUTTER_CONTROLS}; "
                f"it has {', '.join(sorted(found)) or 'none'})"
            )
        self._priority_ctl = _first(found, FRAMERATE_PRIORITY_CONTROLS)
        self._gain = GainMap(_first(found, GAIN_CONTROLS), self._gain_unity_value, self._gain_units_per_x)
        self.gain_range = self._gain.range
        self.shutter_range_us = (
            self._shutter_ctl.minimum * SHUTTER_UNIT_US,
            self._shutter_ctl.maximum * SHUTTER_UNIT_US,
        )
        self._cap = self._opener(self.device, self.width, self.height, self.fps)
        self.set_auto_exposure()

    def stop(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    # -------------------------------------------------------------------------------- frames
    def capture(self) -> CapturedImage:
        if self._cap is None:
            raise CameraError("v4l2 backend: camera not started")
        ok, pixels = self._cap.read()
        if not ok or pixels is None:
            raise CameraError(f"v4l2 backend: no frame from {self.device} (unplugged or stalled?)")
        now = self._clock()
        pixels = self._fit(np.asarray(pixels))
        if self._exposure.mode is ExposureMode.AUTO and now - self._last_readback >= self.auto_readback_s:
            self._readback(ExposureMode.AUTO)
            self._last_readback = now
        exposure = self._exposure
        if self._pending_frames > 0:
            self._pending_frames -= 1
            exposure = Exposure(ExposureMode.AUTO, exposure.shutter_us, exposure.gain)
        return CapturedImage(pixels=pixels, exposure=exposure, timestamp=now)

    def _fit(self, pixels: np.ndarray) -> np.ndarray:
        import cv2

        if pixels.ndim == 2:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
        h, w = pixels.shape[:2]
        if self.resize and (w, h) != (self.width, self.height):
            pixels = cv2.resize(pixels, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(pixels)

    # ------------------------------------------------------------------------------ exposure
    def _layer(self) -> ControlLayer:
        if self._controls is None or self._mode_ctl is None or self._shutter_ctl is None:
            raise CameraError("v4l2 backend: camera not started")
        return self._controls

    def auto_value(self) -> int:
        """The menu entry that means auto: full auto if offered, else aperture priority."""
        assert self._mode_ctl is not None
        menu = self._mode_ctl.menu
        if menu:
            return AUTO_FULL if AUTO_FULL in menu else AUTO_APERTURE_PRIORITY
        return AUTO_APERTURE_PRIORITY

    def auto_controls(self) -> dict[str, int]:
        assert self._mode_ctl is not None
        values = {self._mode_ctl.name: self.auto_value()}
        if self._priority_ctl is not None:
            values[self._priority_ctl.name] = self._priority_ctl.default
        return values

    def manual_controls(self, shutter_us: float, gain: float) -> tuple[dict[str, int], dict[str, int]]:
        """The two writes that lock exposure: the mode first (drivers refuse to set an inactive
        control), then shutter (100 µs units) and gain (driver units)."""
        assert self._mode_ctl is not None and self._shutter_ctl is not None
        first = {self._mode_ctl.name: MANUAL}
        if self._priority_ctl is not None:
            first[self._priority_ctl.name] = 0
        ctl = self._shutter_ctl
        units = min(max(nearest(shutter_us / SHUTTER_UNIT_US), ctl.minimum), ctl.maximum)
        second = {ctl.name: units}
        if self._gain.control is not None:
            second[self._gain.control.name] = self._gain.to_value(gain)
        return first, second

    def set_auto_exposure(self) -> None:
        self._layer().set(self.auto_controls())
        self._pending_frames = 0
        self._readback(ExposureMode.AUTO)
        self._last_readback = self._clock()

    def set_manual_exposure(self, shutter_us: float, gain: float) -> None:
        if not (shutter_us > 0 and gain > 0):
            raise CameraError(f"v4l2 backend: shutter and gain must be positive, got {shutter_us} us, {gain}")
        layer = self._layer()
        first, second = self.manual_controls(shutter_us, gain)
        layer.set(first)
        layer.set(second)
        self._readback(ExposureMode.MANUAL)
        self._pending_frames = self.settle_frames

    def _readback(self, mode: ExposureMode) -> None:
        assert self._shutter_ctl is not None
        names = [self._shutter_ctl.name] + ([self._gain.control.name] if self._gain.control else [])
        values = self._layer().get(names)
        gain = self._gain.to_gain(values[self._gain.control.name]) if self._gain.control else 1.0
        self._exposure = Exposure(mode, values[self._shutter_ctl.name] * SHUTTER_UNIT_US, gain)

    def read_exposure(self) -> Exposure:
        """Mode last set, shutter and gain as the driver reports them now."""
        self._readback(self._exposure.mode)
        return self._exposure
