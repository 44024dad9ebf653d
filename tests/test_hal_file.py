"""File/replay backend against real files written here: an MJPG video and an image folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.core.types import ExposureMode
from edged.hal.base import Camera, CameraError, EndOfStream
from edged.hal.file import NOMINAL_AUTO, FileCamera


def level_frame(level: int, w: int = 160, h: int = 120) -> np.ndarray:
    """A flat frame whose grey level encodes its index (survives JPEG compression)."""
    return np.full((h, w, 3), level, np.uint8)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """20 fps, 12 frames, frame i has level 10 + 20 i."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 20.0, (160, 120))
    assert writer.isOpened()
    for i in range(12):
        writer.write(level_frame(10 + 20 * i))
    writer.release()
    return path


def levels(cam: FileCamera, n: int) -> list[int]:
    return [int(round(cam.capture().pixels.mean())) for _ in range(n)]


def test_video_subsampled_to_configured_rate_resized_and_timed(video: Path) -> None:
    cam = FileCamera(video, 64, 48, fps=10.0)
    assert isinstance(cam, Camera)
    cam.start()
    got = [cam.capture() for _ in range(6)]
    assert all(g.pixels.shape == (48, 64, 3) and g.pixels.dtype == np.uint8 for g in got)
    # 20 fps source at 10 fps: every second source frame (levels 10, 50, 90, ...).
    assert [int(round(g.pixels.mean())) for g in got] == pytest.approx([10 + 40 * i for i in range(6)], abs=3)
    stamps = np.array([g.timestamp for g in got])
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-6)
    with pytest.raises(EndOfStream, match="after 6 frames"):
        cam.capture()
    cam.stop()
    cam.stop()


def test_video_same_rate_plays_every_frame_and_loops(video: Path) -> None:
    cam = FileCamera(video, 160, 120, fps=20.0, loop=True)
    cam.start()
    first = levels(cam, 12)
    assert first == pytest.approx([10 + 20 * i for i in range(12)], abs=3)
    assert levels(cam, 3) == pytest.approx([10, 30, 50], abs=3)
    cam.stop()


def test_image_folder_sorted_by_name_exact_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = {name: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for name in ("b_02.png", "a_01.png", "c_03.png")}
    for name, img in images.items():
        cv2.imwrite(str(tmp_path / name), img)
    cv2.imwrite(str(tmp_path / "d_04.png"), images["a_01.png"][:, :, 0])  # grey -> BGR
    (tmp_path / "notes.txt").write_text("not an image")
    cam = FileCamera(tmp_path, 64, 48, fps=5.0)
    cam.start()
    got = [cam.capture().pixels for _ in range(4)]
    for g, name in zip(got, ("a_01.png", "b_02.png", "c_03.png"), strict=False):
        np.testing.assert_array_equal(g, images[name])
    assert got[3].shape == (48, 64, 3)
    np.testing.assert_array_equal(got[3][:, :, 2], images["a_01.png"][:, :, 0])
    with pytest.raises(EndOfStream):
        cam.capture()


def test_exposure_is_recorded_not_applied(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0.png"), level_frame(100))
    cam = FileCamera(tmp_path, 160, 120, fps=10.0, loop=True)
    cam.start()
    first = cam.capture()
    assert first.exposure == NOMINAL_AUTO and cam.read_exposure().mode is ExposureMode.AUTO
    cam.set_manual_exposure(2000.0, 3.5)
    locked = cam.capture()
    assert (locked.exposure.mode, locked.exposure.shutter_us, locked.exposure.gain) == (ExposureMode.MANUAL, 2000.0, 3.5)
    np.testing.assert_array_equal(locked.pixels, first.pixels)
    cam.set_manual_exposure(2000.0, 99.0)
    assert cam.read_exposure().gain == cam.gain_range[1]
    cam.set_auto_exposure()
    assert cam.capture().exposure == NOMINAL_AUTO
    with pytest.raises(CameraError, match="must be positive"):
        cam.set_manual_exposure(0.0, 1.0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.mp4", "does not exist"),
        (lambda d: d, "holds no images"),
        (lambda d: (d / "junk.mp4").write_bytes(b"\x00not a video" * 100) and d / "junk.mp4", "cannot open|no readable"),
        (lambda d: Path(""), "path is empty"),
    ],
)
def test_bad_sources_raise_clear_errors(tmp_path: Path, make, message: str) -> None:
    cam = FileCamera(make(tmp_path), 64, 48, fps=10.0)
    with pytest.raises(CameraError, match=message):
        cam.start()


def test_undecodable_image_and_capture_before_start(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    cam = FileCamera(tmp_path, 64, 48, fps=10.0)
    with pytest.raises(CameraError, match="before start"):
        cam.capture()
    cam.start()
    with pytest.raises(CameraError, match="cannot decode image .*broken.jpg"):
        cam.capture()


def test_unset_size_keeps_the_sources_own_size(video: Path, tmp_path: Path) -> None:
    cam = FileCamera(video, None, None, fps=20.0)
    cam.start()
    assert cam.capture().pixels.shape == (120, 160, 3)  # not stretched to a default size
    cam.stop()
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), level_frame(50, 200, 100))
    cv2.imwrite(str(folder / "b.png"), level_frame(90, 100, 50))
    cam = FileCamera(folder, None, None, fps=5.0)
    cam.start()
    # a folder runs at its first image's size; later images are fitted to it
    assert [cam.capture().pixels.shape for _ in range(2)] == [(100, 200, 3), (100, 200, 3)]


def test_factory_passes_the_native_size_through_for_files(video: Path) -> None:
    from edged.config import CameraConfig, FileCameraConfig
    from edged.runtime.camera import make_camera

    cam = make_camera(CameraConfig(backend="file", fps=20.0, file=FileCameraConfig(path=str(video))))
    cam.start()
    assert cam.capture().pixels.shape == (120, 160, 3)
    cam.stop()
