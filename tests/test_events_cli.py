"""``edged events`` reads the events a real ``edged run`` stored in its outbox (SQLite), read-only,
while the daemon runs and after it stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.remote_rig import write_config

EDGED = [sys.executable, "-m", "edged.cli"]


def covered_config(tmp: Path) -> Path:
    """A file camera looping over black frames (a covered lens) with the health checks on."""
    cfg = write_config(tmp, "[health]\nenabled = true\n")
    for image in (tmp / "images").glob("*.png"):
        cv2.imwrite(str(image), np.zeros((120, 160, 3), np.uint8))
    return cfg


def events(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGED, "events", "--config", str(cfg), *args], capture_output=True, text=True, timeout=60,
                          cwd=cfg.parent)


@pytest.mark.slow
def test_events_lists_what_a_real_run_stored_while_it_runs_and_after(tmp_path: Path) -> None:
    cfg = covered_config(tmp_path)
    run = subprocess.Popen([*EDGED, "run", "--config", str(cfg), "--out", str(tmp_path / "out")], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        listed: list[dict] = []
        while not listed and time.monotonic() < deadline:
            assert run.poll() is None, "the daemon ended early"
            seen = events(cfg, "--json", "--kind", "cover")
            assert seen.returncode in (0, 2), seen.stderr  # 2 only before the outbox exists
            listed = [json.loads(line) for line in seen.stdout.splitlines()]
            time.sleep(0.2)
        assert listed, "no cover event listed while the daemon ran"
        assert run.poll() is None, "listing must not disturb the running daemon"
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    first = listed[0]
    assert first["event"] == "health" and first["kind"] == "cover" and first["state"] == "start"
    assert first["device"] == "rsu-test" and first["image_id"] and first["dest"] == "ops"

    human = events(cfg)
    assert human.returncode == 0, human.stderr
    assert "health  cover start" in human.stdout, human.stdout
    one = events(cfg, "--json", "--limit", "1")
    assert one.returncode == 0 and len(one.stdout.splitlines()) == 1, one.stdout
    none = events(cfg, "--kind", "trail")
    assert none.returncode == 0 and none.stdout == "", none.stdout
    assert "no stored events of kind trail" in none.stderr


def test_events_without_an_outbox_is_one_clear_line(tmp_path: Path) -> None:
    cfg = covered_config(tmp_path)
    result = events(cfg)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no outbox at" in lines[0] and str(tmp_path / "data") in lines[0], result.stderr
