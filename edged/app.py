"""Builds a runnable daemon (camera, stages, sinks) from a validated config."""

from __future__ import annotations

import time
from pathlib import Path

from edged.config import Config, resolve_path
from edged.daemon import Daemon, Sink
from edged.pipeline import Stage
from edged.sinks import FrameWriter
from hal.base import Camera
from hal.factory import make_camera


def paced(config: Config) -> bool:
    """Whether the daemon must pace capture itself (replayed sources) or the sensor paces it."""
    cam = config.camera
    if cam.backend == "fake":
        return cam.fake.realtime
    if cam.backend == "file":
        return cam.file.realtime
    return False


def run_folder(config: Config) -> Path:
    """A fresh folder under ``output.dir`` for this run's local output."""
    root = resolve_path(config.output.dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = root / f"run-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = root / f"run-{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


class AppBuilder:
    """Builds cameras and stage chains from config sections (the daemon's :class:`Builder`)."""

    def camera(self, config: Config) -> Camera:
        return make_camera(config.camera)

    def stages(self, config: Config, changed: set[str] | None) -> list[Stage]:
        """The per-frame stage chain for this config."""
        return []

    def paced(self, config: Config) -> bool:
        return paced(config)


def build_daemon(config: Config, out: Path, camera: Camera | None = None) -> Daemon:
    """Wire camera, stages and sinks; ``out`` receives the run's local output."""
    builder = AppBuilder()
    daemon = Daemon(config, builder, [], summary_path=out / "summary.json", camera=camera)
    privacy = any(s.name == "privacy" for s in daemon.pipeline.stages)
    sinks: list[Sink] = [
        FrameWriter(out / "frames", config.output.save_every, config.output.jpeg_quality, allow_raw=not privacy)
    ]
    daemon.sinks = sinks
    return daemon
