"""make_camera picks the configured backend and passes the config through."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import ConfigError, from_dict, plugins
from edged.hal.base import Camera, CameraError, Pacing
from edged.hal.file import FileCamera
from edged.hal.picamera2 import PiCamera
from edged.hal.v4l2 import V4l2Camera
from edged.runtime.camera import make_camera


def camera_config(camera: dict):
    return from_dict({"camera": camera}).camera


def test_file_backend_built_and_runs(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0.png"), np.full((90, 120, 3), 77, np.uint8))
    cam = make_camera(camera_config({"backend": "file", "width": 96, "height": 64, "fps": 5.0,
                                     "file": {"path": str(tmp_path), "loop": True}}))
    assert isinstance(cam, FileCamera) and isinstance(cam, Camera)
    assert (cam.width, cam.height, cam.fps, cam.loop) == (96, 64, 5.0, True)
    cam.start()
    assert [cam.capture().pixels.shape for _ in range(3)] == [(64, 96, 3)] * 3  # loops a one-image folder


def test_hardware_backends_built_without_importing_their_libraries() -> None:
    had = "picamera2" in sys.modules
    pi = make_camera(camera_config({"backend": "picamera2", "fps": 15.0, "picamera2": {"camera_num": 1}}))
    assert isinstance(pi, PiCamera) and (pi.camera_num, pi.fps, pi.width) == (1, 15.0, 1280)
    assert ("picamera2" in sys.modules) == had
    v = make_camera(camera_config({"backend": "v4l2", "v4l2": {"device": "/dev/video3", "gain_unity_value": 8,
                                                              "gain_units_per_x": 8.0}}))
    assert isinstance(v, V4l2Camera) and v.device == "/dev/video3"
    assert (v._gain_unity_value, v._gain_units_per_x) == (8, 8.0)


def test_fake_backend_gets_the_scene_config() -> None:
    fake = pytest.importorskip("edged_sim.camera")
    cam = make_camera(camera_config({"backend": "fake", "width": 320, "height": 240,
                                     "fake": {"seed": 11, "events": False}}))
    assert isinstance(cam, fake.FakeCamera) and isinstance(cam, Camera)
    assert (cam.width, cam.height) == (320, 240)


def test_each_backend_says_how_it_is_paced(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0.png"), np.full((90, 120, 3), 77, np.uint8))
    for realtime, pacing in ((True, Pacing.REALTIME), (False, Pacing.FREE)):
        cfg = {"backend": "file", "fps": 5.0, "file": {"path": str(tmp_path), "realtime": realtime}}
        assert make_camera(camera_config(cfg)).pacing is pacing
    assert make_camera(camera_config({"backend": "picamera2"})).pacing is Pacing.SENSOR
    assert make_camera(camera_config({"backend": "v4l2"})).pacing is Pacing.SENSOR
    pytest.importorskip("edged_sim.camera")
    assert make_camera(camera_config({"backend": "fake", "fake": {"realtime": True}})).pacing is Pacing.REALTIME
    assert make_camera(camera_config({"backend": "fake", "fake": {"realtime": False}})).pacing is Pacing.FREE


def test_a_plugin_backend_that_does_not_import_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a device where edged-sim is registered but broken: the import fails, the error names the backend."""
    pytest.importorskip("edged_sim.config")
    for name in [m for m in sys.modules if m == "edged_sim" or m.startswith("edged_sim.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "edged_sim", None)  # the import system refuses it
    with pytest.raises(ConfigError, match="config error at camera.fake: camera backend 'fake' is installed but does "
                                          "not import"):
        camera_config({"backend": "fake"})


def test_a_backend_no_package_provides_is_refused_before_any_camera_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a device without edged-sim: ``fake`` is no backend there, and the config says so."""
    pytest.importorskip("edged_sim.config")
    made_before = camera_config({"backend": "fake"})
    monkeypatch.setattr(plugins, "_entries", lambda: {})
    with pytest.raises(ConfigError, match="config error at camera.backend: no camera backend 'fake' here "
                                          r"\(known: file, picamera2, v4l2\)"):
        camera_config({"backend": "fake"})
    with pytest.raises(CameraError, match="no installed camera backend 'fake'"):
        make_camera(made_before)  # a config made while the package was there
