"""Replay from a file logs its progress (frames done of the pass's total) now and then and at the end."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

import edged.hal.file as file_camera
from edged.hal.base import EndOfStream
from edged.hal.file import FileCamera


def video(path: Path, frames: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()


def replay(camera: FileCamera, limit: int = 100) -> int:
    camera.start()
    n = 0
    try:
        while n < limit:
            camera.capture()
            n += 1
    except EndOfStream:
        pass
    camera.stop()
    return n


def test_replay_logs_frames_of_the_total(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    video(tmp_path / "v.avi", 12, 20.0)
    caplog.set_level(logging.INFO, logger="edged.hal.file")
    assert replay(FileCamera(tmp_path / "v.avi", None, None, 10.0)) == 6  # 20 fps source at 10 fps
    assert [r.getMessage() for r in caplog.records] == ["file camera: v.avi: 6/6 frames (100%), end of the file"]
    caplog.clear()
    monkeypatch.setattr(file_camera, "PROGRESS_EVERY_S", 0.0)
    assert replay(FileCamera(tmp_path / "v.avi", None, None, 20.0)) == 12
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "file camera: v.avi: 1/12 frames (8%)" and lines[-2] == "file camera: v.avi: 12/12 frames (100%)"
    caplog.clear()
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    assert replay(FileCamera(tmp_path, None, None, 5.0)) == 3
    assert "3/3 frames" in caplog.records[-1].getMessage()
