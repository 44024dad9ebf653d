"""Track ids: persisted in blocks, never reused after a restart or a SIGKILL, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edged.config import Config, from_dict
from edged.core.types import Detections, Exposure, ExposureMode, FrameMeta, Position
from edged.stages.track.ids import ID_FILE_NAME, IdAllocator, IdStoreError
from edged.stages.track.stage import Tracking

ROOT = Path(__file__).resolve().parent.parent


def test_ids_increase_and_the_file_is_written_once_per_block(tmp_path):
    alloc = IdAllocator.in_dir(tmp_path, block=10)
    ids = [alloc.next_id() for _ in range(25)]
    assert ids == list(range(1, 26))
    assert alloc.writes == 3
    assert json.loads((tmp_path / ID_FILE_NAME).read_text()) == {"next_free": 31}


def test_restart_never_reuses_an_id(tmp_path):
    first = IdAllocator.in_dir(tmp_path, block=8)
    used = [first.next_id() for _ in range(5)]
    second = IdAllocator.in_dir(tmp_path, block=8)  # "restart" without any shutdown hook
    more = [second.next_id() for _ in range(20)]
    assert min(more) > max(used)
    third = IdAllocator.in_dir(tmp_path, block=8)
    assert third.next_id() > max(more)


def test_ids_survive_sigkill(tmp_path):
    """A child allocates ids as fast as it can and is SIGKILLed; a new allocator starts past all of them."""
    script = (
        "import sys\n"
        "from edged.stages.track.ids import IdAllocator\n"
        f"a = IdAllocator.in_dir({str(tmp_path)!r}, block=7)\n"
        "while True:\n"
        "    print(a.next_id(), flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT, text=True)
    seen: list[int] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while len(seen) < 200 and time.monotonic() < deadline:
        seen.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait()
    seen += [int(x) for x in rest.split()]
    assert len(seen) >= 200
    after = IdAllocator.in_dir(tmp_path, block=7)
    assert after.next_id() > max(seen)


def test_tracks_get_fresh_ids_across_a_restart_of_the_tracking_stage(tmp_path):
    config = from_dict({"device": {"data_dir": str(tmp_path)}, "track": {"id_block": 4}})

    def run(tracking: Tracking, n_objects: int, t0: float) -> set[int]:
        ids: set[int] = set()
        for i in range(5):
            exposure = Exposure(ExposureMode.MANUAL, 2000, 1)
            meta = FrameMeta(f"i{i}", i, "v", t0 + i / 10, exposure, Position(), 1280, 720)
            boxes = np.array([[20 + 90 * k, 100, 80 + 90 * k, 200] for k in range(n_objects)], np.float32)
            d = Detections(boxes, np.full(n_objects, 0.9, np.float32), np.full(n_objects, 3, np.int16),
                           np.zeros(n_objects, np.float32))
            step, _, _ = tracking.step(meta, d)
            ids |= set(step.objects.track_ids.tolist())
        return ids

    before = run(Tracking.from_config(config), 6, 1000.0)
    after = run(Tracking.from_config(config), 6, 2000.0)
    assert len(before) == len(after) == 6
    assert not before & after


def test_corrupt_store_is_a_clear_error_and_is_left_alone(tmp_path):
    path = tmp_path / ID_FILE_NAME
    path.write_text("{oops")
    with pytest.raises(IdStoreError, match=r"track_ids.json is corrupt"):
        IdAllocator(path)
    assert path.read_text() == "{oops"
    path.write_text('{"next_free": -3}')
    with pytest.raises(IdStoreError, match="next_free must be an integer >= 1"):
        IdAllocator(path)


def test_unwritable_store_is_a_clear_error(tmp_path):
    (tmp_path / (ID_FILE_NAME + ".tmp")).mkdir()  # the temp file cannot be created (works as root too)
    alloc = IdAllocator.in_dir(tmp_path)
    with pytest.raises(IdStoreError, match="cannot write track id store"):
        alloc.next_id()
    assert not (tmp_path / ID_FILE_NAME).exists()


def test_default_config_block():
    assert Config().track.id_block == 1024
