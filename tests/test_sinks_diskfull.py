"""Local output on a full disk (a real 2 MiB tmpfs): counted and logged at a bounded rate, never fatal;
the summary is written when it can be and logged when it cannot."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from edged.config import load
from edged.runtime.app import build_daemon
from tests.remote_rig import write_config
from tests.test_outbox_diskfull import small_tmpfs  # noqa: F401 (fixture)

REAL = Path(__file__).resolve().parent / "data" / "real"


def test_local_frames_on_a_full_disk_are_counted_and_the_run_goes_on(
    tmp_path: Path, small_tmpfs: Path, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    config = load(write_config(tmp_path, '[output]\nsave_every = 1\njpeg_quality = 95\nmin_free_bytes = 0\n'))
    config.camera.file.path = str(REAL)
    config.camera.file.realtime = False
    config.camera.width, config.camera.height = 1280, 720
    daemon = build_daemon(config, small_tmpfs)
    with caplog.at_level(logging.WARNING):
        summary = asyncio.run(asyncio.wait_for(daemon.run(max_frames=60), 120))
    frames = summary.frames
    assert frames.captured == 60 and frames.processed == 60, frames
    written = summary.sinks["frames_written"]
    assert written.failed > 0 and written.count > 0 and written.count + written.failed == 60, written
    lines = [r for r in caplog.records if "not written to" in r.getMessage() and "local frame" in r.getMessage()]
    assert 1 <= len(lines) <= 2, "a full disk is logged once, not once a frame"
    assert not [p for p in (small_tmpfs / "frames").iterdir() if p.stat().st_size == 0], "no empty JPEG left behind"


def test_summary_is_written_when_there_is_room(tmp_path: Path) -> None:
    config = load(write_config(tmp_path, "[output]\nsave_every = 0\n"))
    daemon = build_daemon(config, tmp_path / "run")
    summary = asyncio.run(asyncio.wait_for(daemon.run(max_frames=5), 60))
    assert summary.summary_written is True
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["frames"]["processed"] == 5


def test_summary_on_a_full_disk_is_logged_whole(tmp_path: Path, small_tmpfs: Path,  # noqa: F811
                                                caplog: pytest.LogCaptureFixture) -> None:
    filler = small_tmpfs / "filler"
    with pytest.raises(OSError), open(filler, "wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    config = load(write_config(tmp_path, "[output]\nsave_every = 0\n"))
    daemon = build_daemon(config, tmp_path / "run")
    daemon.summary_path = small_tmpfs / "summary.json"
    with caplog.at_level(logging.ERROR):
        summary = asyncio.run(asyncio.wait_for(daemon.run(max_frames=5), 60))
    assert summary.summary_written is False and summary.frames.processed == 5
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("summary not written to")]
    assert logged and "No space left on device" in logged[0]
    assert json.loads(logged[0].split("summary: ", 1)[1])["frames"]["processed"] == 5
    assert not (small_tmpfs / ".summary.json.tmp").exists()


def test_local_frames_leave_the_free_space_floor_to_the_outbox(
    tmp_path: Path, small_tmpfs: Path, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    """With the default floor (64 MiB) a 2 MiB disk gets no frames, and the outbox keeps its room."""
    config = load(write_config(tmp_path, '[output]\nsave_every = 1\n'))
    config.camera.file.path = str(REAL)
    config.camera.file.realtime = False
    daemon = build_daemon(config, small_tmpfs)
    with caplog.at_level(logging.WARNING):
        summary = asyncio.run(asyncio.wait_for(daemon.run(max_frames=20), 120))
    written = summary.sinks["frames_written"]
    assert written.count == 0 and written.failed == 0 and written.skipped_low_space == 20, written
    assert len([r for r in caplog.records if "output.min_free_bytes" in r.getMessage()]) == 1
