"""V4L2 backend: the real ``v4l2-ctl`` code path (subprocess, argument format, output parsing)
against a stand-in ``v4l2-ctl`` executable that behaves like a UVC driver, and frames from a real
OpenCV capture of a video file standing in for the device stream. No camera is attached here."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.core.types import ExposureMode
from edged.hal.base import Camera, CameraError
from edged.hal.v4l2 import Control, V4l2Camera, V4l2Ctl, parse_controls

NEW_STYLE = {
    "names": {"mode": "auto_exposure", "time": "exposure_time_absolute", "gain": "gain", "prio": "exposure_dynamic_framerate"},
    "hex": True,
    "menu": {"1": "Manual Mode", "3": "Aperture Priority Mode"},
    "mode": 3,
    "time": {"min": 1, "max": 5000, "value": 157},
    "gain": {"min": 0, "max": 100, "value": 0},
    "ae": {"time": 312, "gain": 40},
}
OLD_STYLE = {
    "names": {"mode": "exposure_auto", "time": "exposure_absolute", "gain": "gain", "prio": "exposure_auto_priority"},
    "hex": False,
    "menu": {"0": "Auto Mode", "1": "Manual Mode"},
    "mode": 0,
    "time": {"min": 3, "max": 2047, "value": 250},
    "gain": {"min": 16, "max": 248, "value": 16},
    "ae": {"time": 90, "gain": 64},
}

STAND_IN = textwrap.dedent(
    '''
    """Stand-in for v4l2-ctl: one camera whose state lives in a JSON file; every call is logged."""
    import json, sys
    from pathlib import Path

    here = Path(__file__).parent
    state = json.loads((here / "state.json").read_text())
    args = sys.argv[1:]
    with (here / "calls.log").open("a") as log:
        log.write(json.dumps(args) + "\\n")
    if args[:2] != ["-d", state["device"]]:
        sys.exit(f"Cannot open device {args[1] if len(args) > 1 else '?'}, exiting.")
    n = state["names"]
    auto = state["mode"] != 1

    def current(key):
        if key in ("time", "gain") and auto:
            return state["ae"][key]
        return state[key]["value"] if key in ("time", "gain") else state["mode"]

    def line(name, cid, kind, rest):
        hexid = f" 0x{cid:08x}" if state["hex"] else ""
        return f"{name:>31}{hexid} ({kind}){' ' * (8 - len(kind))}: {rest}"

    op = args[2]
    if op == "--list-ctrls-menus":
        out = ["", "User Controls", ""]
        out.append(line("brightness", 0x00980900, "int", "min=-64 max=64 step=1 default=0 value=0"))
        g = state["gain"]
        out.append(line(n["gain"], 0x00980913, "int", f"min={g['min']} max={g['max']} step=1 default={g['min']} value={current('gain')}"))
        out += ["", "Camera Controls", ""]
        label = state["menu"][str(state["mode"])]
        out.append(line(n["mode"], 0x009A0901, "menu", f"min=0 max=3 default=3 value={state['mode']} ({label})"))
        out += [f"\\t\\t\\t\\t{k}: {v}" for k, v in state["menu"].items()]
        t = state["time"]
        flags = " flags=inactive" if auto else ""
        out.append(line(n["time"], 0x009A0902, "int", f"min={t['min']} max={t['max']} step=1 default=157 value={current('time')}{flags}"))
        out.append(line(n["prio"], 0x009A0903, "bool", f"default=0 value={state.get('prio', 0)}"))
        print("\\n".join(out))
    elif op.startswith("--get-ctrl="):
        key_of = {v: k for k, v in n.items()}
        for name in op.split("=", 1)[1].split(","):
            if name not in key_of:
                sys.exit(f"unknown control '{name}'")
            print(f"{name}: {current(key_of[name]) if key_of[name] != 'prio' else state.get('prio', 0)}")
    elif op.startswith("--set-ctrl="):
        key_of = {v: k for k, v in n.items()}
        for item in op.split("=", 1)[1].split(","):
            name, value = item.split("=")
            key, value = key_of[name], int(value)
            if key == "mode":
                if str(value) not in state["menu"]:
                    sys.exit(f"VIDIOC_S_EXT_CTRLS: failed: Invalid argument")
                state["mode"], auto = value, value != 1
            elif key == "prio":
                state["prio"] = value
            else:
                if auto and key == "time":
                    sys.exit("VIDIOC_S_EXT_CTRLS: failed: Permission denied")
                if not state[key]["min"] <= value <= state[key]["max"]:
                    sys.exit("VIDIOC_S_EXT_CTRLS: failed: Numerical result out of range")
                state[key]["value"] = value
        (here / "state.json").write_text(json.dumps(state))
    else:
        sys.exit(f"unsupported {op}")
    '''
)


class StandIn:
    """The stand-in executable, its state and its call log."""

    def __init__(self, folder: Path, device: Path, style: dict) -> None:
        folder.mkdir()
        self.folder = folder
        script = folder / "v4l2-ctl"
        script.write_text(f"#!{sys.executable}\n" + STAND_IN)
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        self.executable = str(script)
        (folder / "state.json").write_text(json.dumps({"device": str(device), **json.loads(json.dumps(style))}))

    @property
    def state(self) -> dict:
        return json.loads((self.folder / "state.json").read_text())

    def calls(self) -> list[list[str]]:
        log = self.folder / "calls.log"
        return [json.loads(x)[2:] for x in log.read_text().splitlines()] if log.exists() else []

    def sets(self) -> list[str]:
        return [c[0] for c in self.calls() if c[0].startswith("--set-ctrl")]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def device(tmp_path: Path) -> Path:
    dev = tmp_path / "video0"
    dev.touch()
    return dev


@pytest.fixture
def stream(tmp_path: Path):
    """An opener returning a real OpenCV capture of a 40-frame 160x120 MJPG video."""
    path = tmp_path / "stream.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(40):
        writer.write(np.full((120, 160, 3), 5 * i, np.uint8))
    writer.release()
    opened: list[tuple] = []

    def opener(dev: str, w: int, h: int, fps: float):
        opened.append((dev, w, h, fps))
        return cv2.VideoCapture(str(path))

    opener.opened = opened  # type: ignore[attr-defined]
    return opener


def make(tmp_path: Path, device: Path, stream, style=NEW_STYLE, **kw) -> tuple[V4l2Camera, StandIn, Clock]:
    stand_in = StandIn(tmp_path / "bin", device, style)
    clock = Clock()
    cam = V4l2Camera(
        str(device), 80, 60, 10.0, controls=V4l2Ctl(str(device), executable=stand_in.executable),
        opener=stream, clock=clock, **kw,
    )
    return cam, stand_in, clock


def test_parse_both_output_formats() -> None:
    new = parse_controls(
        "Camera Controls\n\n"
        "                  auto_exposure 0x009a0901 (menu)   : min=0 max=3 default=3 value=3 (Aperture Priority Mode)\n"
        "\t\t\t\t1: Manual Mode\n\t\t\t\t3: Aperture Priority Mode\n"
        "         exposure_time_absolute 0x009a0902 (int)    : min=1 max=5000 step=1 default=157 value=157 flags=inactive\n"
        "     exposure_dynamic_framerate 0x009a0903 (bool)   : default=0 value=0\n"
    )
    assert new["auto_exposure"] == Control("auto_exposure", "menu", 0, 3, 1, 3, 3, "", {1: "Manual Mode", 3: "Aperture Priority Mode"})
    assert new["exposure_time_absolute"] == Control("exposure_time_absolute", "int", 1, 5000, 1, 157, 157, "inactive")
    assert (new["exposure_dynamic_framerate"].minimum, new["exposure_dynamic_framerate"].maximum) == (0, 1)
    old = parse_controls("              exposure_absolute (int)    : min=3 max=2047 step=1 default=250 value=250\n")
    assert old["exposure_absolute"] == Control("exposure_absolute", "int", 3, 2047, 1, 250, 250)


def test_start_ranges_and_auto_mode(tmp_path: Path, device: Path, stream) -> None:
    cam, dev, _ = make(tmp_path, device, stream)
    assert isinstance(cam, Camera)
    cam.start()
    assert stream.opened == [(str(device), 80, 60, 10.0)]
    assert cam.shutter_range_us == (100.0, 500_000.0)  # 1..5000 in 100 µs units
    assert cam.gain_range == (1.0, 1.0 + 100 / 16)  # unity = control minimum 0, 16 units per 1x
    assert dev.sets() == ["--set-ctrl=auto_exposure=3,exposure_dynamic_framerate=0"]  # no 0 in the menu: aperture priority
    e = cam.read_exposure()
    assert (e.mode, e.shutter_us, e.gain) == (ExposureMode.AUTO, 31_200.0, 1.0 + 40 / 16)  # what AE chose
    cam.stop()
    cam.stop()


def test_manual_writes_mode_first_then_exact_units(tmp_path: Path, device: Path, stream) -> None:
    cam, dev, _ = make(tmp_path, device, stream)
    cam.start()
    cam.set_manual_exposure(2000.0, 3.0)
    assert dev.sets()[1:] == [
        "--set-ctrl=auto_exposure=1,exposure_dynamic_framerate=0",
        "--set-ctrl=exposure_time_absolute=20,gain=32",  # 2000 µs / 100; 1 + (32 - 0) / 16 = 3x
    ]
    assert cam.read_exposure() == type(cam.read_exposure())(ExposureMode.MANUAL, 2000.0, 3.0)
    cam.set_manual_exposure(2050.0, 1.03125)  # half a unit rounds up: 21 units; 0.5 gain unit -> 1
    assert dev.state["time"]["value"] == 21 and dev.state["gain"]["value"] == 1
    cam.set_manual_exposure(1e7, 500.0)  # clamped to the controls' ranges, not refused by the driver
    assert (dev.state["time"]["value"], dev.state["gain"]["value"]) == (5000, 100)
    cam.set_manual_exposure(10.0, 0.01)
    assert (dev.state["time"]["value"], dev.state["gain"]["value"]) == (1, 0)
    cam.set_auto_exposure()
    assert dev.state["mode"] == 3 and cam.read_exposure().mode is ExposureMode.AUTO


def test_old_control_names_and_explicit_gain_unity(tmp_path: Path, device: Path, stream) -> None:
    cam, dev, _ = make(tmp_path, device, stream, style=OLD_STYLE, gain_unity_value=16, gain_units_per_x=16.0)
    cam.start()
    assert dev.sets() == ["--set-ctrl=exposure_auto=0,exposure_auto_priority=0"]  # full auto offered
    assert cam.gain_range == (1.0, 1.0 + (248 - 16) / 16) and cam.shutter_range_us == (300.0, 204_700.0)
    cam.set_manual_exposure(2000.0, 4.0)
    assert dev.sets()[-2:] == [
        "--set-ctrl=exposure_auto=1,exposure_auto_priority=0",
        "--set-ctrl=exposure_absolute=20,gain=64",  # 16 + 3 * 16
    ]


def test_frames_resized_and_marked_auto_until_settled(tmp_path: Path, device: Path, stream) -> None:
    cam, dev, clock = make(tmp_path, device, stream, settle_frames=3)
    cam.start()
    first = cam.capture()
    assert first.pixels.shape == (60, 80, 3) and first.exposure.mode is ExposureMode.AUTO
    assert first.exposure.shutter_us == 31_200.0 and first.timestamp == clock.t
    cam.set_manual_exposure(2000.0, 2.0)
    frames = [cam.capture().exposure for _ in range(5)]
    assert [f.mode for f in frames] == [ExposureMode.AUTO] * 3 + [ExposureMode.MANUAL] * 2
    assert all((f.shutter_us, f.gain) == (2000.0, 2.0) for f in frames)


def test_auto_readback_is_rate_limited(tmp_path: Path, device: Path, stream) -> None:
    cam, dev, clock = make(tmp_path, device, stream, auto_readback_s=0.5)
    cam.start()
    gets = lambda: sum(c[0].startswith("--get-ctrl") for c in dev.calls())  # noqa: E731
    before = gets()
    for _ in range(4):
        clock.t += 0.1
        cam.capture()
    assert gets() == before  # 0.4 s since the read at start
    clock.t += 0.1
    cam.capture()
    assert gets() == before + 1


def test_errors_are_clear(tmp_path: Path, device: Path, stream, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        V4l2Camera(str(tmp_path / "video9"), 80, 60, 10.0).start()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CameraError, match=r"'v4l2-ctl' not found; install it .*v4l-utils"):
        V4l2Camera(str(device), 80, 60, 10.0).start()
    cam, dev, _ = make(tmp_path, device, stream)
    other = V4l2Ctl(str(tmp_path / "video1"), executable=dev.executable)
    with pytest.raises(CameraError, match="Cannot open device .*video1"):
        other.list()
    cam.start()
    with pytest.raises(CameraError, match="Permission denied"):
        cam._controls.set({"exposure_time_absolute": 30})  # what happens if the mode is not written first
    with pytest.raises(CameraError, match="must be positive"):
        cam.set_manual_exposure(2000.0, 0.0)
    for _ in range(40):
        cam.capture()
    with pytest.raises(CameraError, match="no frame from"):
        cam.capture()


def test_device_without_exposure_controls(tmp_path: Path, device: Path, stream) -> None:
    class NoExposure:
        def list(self) -> dict[str, Control]:
            return {"brightness": Control("brightness", "int", -64, 64)}

    cam = V4l2Camera(str(device), 80, 60, 10.0, controls=NoExposure(), opener=stream)
    with pytest.raises(CameraError, match="has no manual exposure controls .*it has brightness"):
        cam.start()
