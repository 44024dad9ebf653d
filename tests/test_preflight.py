"""``check-config`` refuses what ``run`` refuses, with the same line: one preflight serves both."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edged.cli import main
from tests.remote_rig import make_images, privacy_section

ROOT = Path(__file__).resolve().parent.parent

DET = (f'[[detect.models]]\nname = "det"\nfile = "{ROOT}/models/edged_det_int8.tflite"\nlayout = "yolo_grid"\n'
       'input_size = [640, 384]\nlabels = ["plate", "car", "person", "truck", "bus"]\n')
"""A model section that matches its file (edged-det)."""


def _config(tmp_path: Path, *, camera: str = "", detect: str = DET) -> Path:
    """A config that starts: file camera on one photo, the keys and folders under ``tmp_path``."""
    images = make_images(tmp_path / "images", 1)
    camera = camera or f'[camera]\nbackend = "file"\n[camera.file]\npath = "{images}"\n'
    text = (f'[device]\ndata_dir = "{tmp_path / "data"}"\n[output]\ndir = "{tmp_path / "out"}"\n'
            f'[exposure]\nenabled = false\n{camera}{privacy_section(tmp_path)}[detect]\n{detect}')
    path = tmp_path / "edged.toml"
    path.write_text(text)
    return path


def _refusals(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], list[str]]:
    """The problem lines of ``check-config`` and of ``run`` (after their ``edged: ...`` prefixes)."""
    assert main(["check-config", str(config)]) == 2
    check = [line.removeprefix(f"edged: {config}: ") for line in capsys.readouterr().err.splitlines()
             if line.startswith("edged: ")]
    assert main(["run", "--config", str(config), "--frames", "1"]) == 2
    run = [line.removeprefix(f"edged: cannot start: {config}: ") for line in capsys.readouterr().err.splitlines()
           if line.startswith("edged: cannot start: ")]
    return check, run


def test_the_base_config_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cases below each change one thing of a config both commands accept."""
    config = _config(tmp_path)
    assert main(["check-config", str(config)]) == 0, capsys.readouterr().err
    assert main(["run", "--config", str(config), "--frames", "1", "--out", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize(("change", "expected"), [
    ("input_size = [640, 384]", "input_size = [320, 192]"),
    ('labels = ["plate", "car", "person", "truck", "bus"]', 'labels = ["plate", "car", "person"]'),
], ids=["input-size", "labels"])
def test_a_model_that_does_not_match_its_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              change: str, expected: str) -> None:
    config = _config(tmp_path, detect=DET.replace(change, expected))
    check, run = _refusals(config, capsys)
    assert len(check) == 1 and check == run, (check, run)
    assert check[0].startswith("detect.models[0] (det): ") and "edged_det_int8.tflite" in check[0]


@pytest.mark.parametrize("content", [b"", b"this is not a video\n"], ids=["empty", "not-a-video"])
def test_a_video_source_that_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            content: bytes) -> None:
    video = tmp_path / "street.mp4"
    video.write_bytes(content)
    config = _config(tmp_path, camera=f'[camera]\nbackend = "file"\n[camera.file]\npath = "{video}"\n')
    check, run = _refusals(config, capsys)
    assert len(check) == 1 and check == run, (check, run)
    assert check[0].startswith("camera.file.path: ") and str(video) in check[0]


def test_an_image_folder_without_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    config = _config(tmp_path, camera=f'[camera]\nbackend = "file"\n[camera.file]\npath = "{empty}"\n')
    check, run = _refusals(config, capsys)
    assert len(check) == 1 and check == run and "holds no images" in check[0], (check, run)


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="this machine has the camera stack")
def test_a_missing_camera_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, camera='[camera]\nbackend = "picamera2"\nwidth = 640\nheight = 480\n')
    check, run = _refusals(config, capsys)
    assert len(check) == 1 and check == run, (check, run)
    assert check[0].startswith("camera.backend: ") and "python3-picamera2" in check[0]


def test_a_v4l2_device_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "video9"
    config = _config(tmp_path, camera=f'[camera]\nbackend = "v4l2"\n[camera.v4l2]\ndevice = "{missing}"\n')
    check, run = _refusals(config, capsys)
    assert len(check) == 1 and check == run and str(missing) in check[0], (check, run)
