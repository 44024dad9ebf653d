"""Test rig for the remote-control tests: a real Daemon on a looping image-folder camera.

The daemon is the real ``edged.runtime.daemon.Daemon`` with the real ``FileCamera`` (edged/hal/file.py), so a
config change restarts a real camera and a bad camera path makes the real start fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edged.core.keys import generate_device_key, generate_platform_key
from edged.remote.store import load_startup_config
from edged.runtime.app import AppBuilder
from edged.runtime.daemon import Daemon


def make_images(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    return folder


def privacy_section(tmp: Path) -> str:
    """A ``[privacy]`` TOML section with freshly generated device and platform keys under ``tmp``."""
    keys = tmp / "keys"
    if not (keys / "device.key").exists():
        generate_device_key(keys / "device")
        for category in ("face", "plate"):
            generate_platform_key(keys / f"func-{category}")
    return (
        f'[privacy]\nsigning_key = "{keys / "device.key"}"\n'
        f'recipients = {{ face = "{keys / "func-face.pub"}", plate = "{keys / "func-plate.pub"}" }}\n'
    )


def write_config(tmp: Path, extra: str = "", device: str = "rsu-test") -> Path:
    """A TOML config: file camera looping over generated images at 25 fps, data under ``tmp``."""
    images = make_images(tmp / "images")
    privacy = privacy_section(tmp) if "[privacy]" not in extra else ""
    # The transport tests speak unsigned (an explicit local-test mode); tests/test_remote_security.py
    # runs the default signed mode.
    auth = '[remote.auth]\nmode = "unsigned"\n' if "[remote.auth]" not in extra else ""
    text = f"""
[device]
id = "{device}"
data_dir = "{tmp / 'data'}"

[camera]
backend = "file"
fps = 25.0
width = 160
height = 120

[camera.file]
path = "{images}"
loop = true
realtime = true

[exposure]
enabled = false

[detect]
enabled = false  # these tests are about remote control; detection on noise only costs time

[pipeline]
stats_period_s = 60.0
{privacy}
{auth}
{extra}
"""
    path = tmp / "edged.toml"
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def running_daemon(config_path: Path, services_for: Any = None) -> AsyncIterator[tuple[Daemon, Any]]:
    """Start a real daemon from ``config_path`` (through ``load_startup_config``); yields
    ``(daemon, startup)`` once a frame has passed; stops and drains it on exit."""
    startup = load_startup_config(config_path)
    services = services_for(startup) if services_for else []
    daemon = Daemon(startup.config, AppBuilder(), [], services=services)
    run = asyncio.create_task(daemon.run())
    try:
        for _ in range(500):
            if daemon.heartbeat or run.done():
                break
            await asyncio.sleep(0.01)
        if run.done():
            run.result()
        assert daemon.heartbeat, "daemon carried no frame within 5 s"
        yield daemon, startup
    finally:
        daemon.request_stop("test over")
        await asyncio.wait_for(run, 20)


def loads(line: bytes | str) -> dict[str, Any]:
    body = json.loads(line)
    assert isinstance(body, dict)
    return body


def broken_model_section(tmp: Path) -> str:
    """A ``[[detect.models]]`` entry whose file is not a model: switching ``detect.enabled`` on
    remotely (allowed: it only adds protection) makes the real stage build fail and roll back."""
    broken = tmp / "broken.tflite"
    broken.write_bytes(b"this is not a flatbuffer" * 8)
    return (
        f'[[detect.models]]\nname = "broken"\nfile = "{broken}"\nlayout = "ssd"\n'
        'input_size = [64, 64]\nlabels = ["face"]\n'
    )
