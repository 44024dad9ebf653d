"""Builds a runnable daemon (camera, stages, sinks, services) from a validated config."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from edged.config import Config, resolve_path
from edged.core.keys import KeyFileError, check_keys, load_signing_key
from edged.core.paths import PRIVATE_DIR, private_dir
from edged.hal.base import Camera, CameraError
from edged.link.destinations import OPS, destination
from edged.link.mqtt import BrokerConfigError
from edged.link.outbox import Outbox, OutboxError, open_from_config
from edged.link.uplink import Uplink
from edged.runtime.camera import make_camera
from edged.runtime.daemon import Daemon, Service, Sink
from edged.runtime.preflight import shared_broker_users
from edged.runtime.seams import DaemonView
from edged.runtime.sinks import FrameWriter, OutboxSink
from edged.stages.detect.detector import Detector
from edged.stages.detect.runtime import ModelError
from edged.stages.detect.stage import DetectStage
from edged.stages.health.stage import HealthStage
from edged.stages.package.stage import PackageStage
from edged.stages.pipeline import Stage
from edged.stages.privacy.stage import PrivacyStage
from edged.stages.select.stage import SelectStage
from edged.stages.track.calibration import CalibrationError
from edged.stages.track.ids import IdStoreError
from edged.stages.track.stage import TrackStage

log = logging.getLogger("edged.runtime.app")

STAGE_SECTIONS: dict[str, frozenset[str]] = {
    "detect": frozenset({"detect"}),
    "track": frozenset({"track", "calibration", "camera", "device"}),
    "select": frozenset({"select"}),
    "privacy": frozenset({"privacy", "device"}),
    "health": frozenset({"health"}),
    "package": frozenset({"device"}),
}
"""Config sections each stage is built from: a stage is rebuilt only when one of them changed, so
the tracker keeps its tracks (and the selector its best images) across unrelated changes."""

BUILD_ERRORS: tuple[type[Exception], ...] = (
    ModelError, KeyFileError, OutboxError, CalibrationError, IdStoreError, BrokerConfigError, CameraError)
"""What building or starting a daemon raises for a bad model, key, outbox, calibration, id store,
broker setting or camera: each says what is wrong in one line, for the caller to print."""


def run_folder(config: Config) -> Path:
    """A fresh private folder under ``output.dir`` for this run's local output; a name already taken
    (by a folder, a file or a link, which is never followed) is passed over."""
    root = private_dir(resolve_path(config.output.dir), configured=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while True:
        folder = root / (f"run-{stamp}" if n == 1 else f"run-{stamp}-{n}")
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            if folder.is_symlink():
                log.warning("output: %s is a symbolic link; not used for this run's output", folder)
            n += 1
            continue
        os.chmod(folder, PRIVATE_DIR)
        return folder


class AppBuilder:
    """Builds cameras and stage chains from config sections (the daemon's :class:`Builder`).

    Stages whose sections did not change are reused, state and all. ``first`` stages run ahead of the
    configured chain on every frame and are kept as they are through every rebuild (the simulation's
    oracle detections).
    """

    def __init__(self, quality: Callable[[], int] = lambda: 85, first: Sequence[Stage] = ()) -> None:
        self.quality = quality
        self.first: tuple[Stage, ...] = tuple(first)
        self._built: dict[str, Stage] = {}

    def camera(self, config: Config) -> Camera:
        return make_camera(config.camera)

    def stages(self, config: Config, changed: set[str] | None) -> list[Stage]:
        """The per-frame stage chain: ``first``, then detect → track → select → privacy → health → package."""
        cv2.setNumThreads(config.pipeline.opencv_threads)  # process-wide; see PipelineConfig
        wanted: list[tuple[str, Callable[[], Stage]]] = []
        if config.detect.enabled:
            wanted.append(("detect", lambda: DetectStage(Detector.from_config(config.detect))))
        wanted += [
            ("track", lambda: TrackStage.from_config(config)),
            ("select", lambda: SelectStage.from_config(config)),
            ("privacy", lambda: PrivacyStage(config.privacy, self._keys(config), config.device.id)),
        ]
        if config.health.enabled:
            wanted.append(("health", lambda: HealthStage(config.health)))
        wanted.append(("package", lambda: PackageStage(config.device.id, self.quality)))
        built: dict[str, Stage] = {}
        for name, make in wanted:
            keep = changed is not None and name in self._built and not (STAGE_SECTIONS[name] & changed)
            built[name] = self._built[name] if keep else make()
        self._built = built
        return [*self.first, *built.values()]

    def restore_stages(self, stages: list[Stage]) -> None:
        self._built = {s.name: s for s in stages if not any(s is f for f in self.first)}

    @staticmethod
    def _keys(config: Config):  # noqa: ANN205 - edged.core.keys.PrivacyKeys | None
        return check_keys(config) if config.privacy.categories else None


class UplinkService:
    """Runs one destination's :class:`~edged.link.uplink.Uplink` beside the daemon; after the pipeline
    drains it gets the uplink's own grace period to flush what it can, then stops."""

    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink
        self.name = f"uplink-{uplink.dest}"

    def link_status(self) -> dict[str, dict[str, Any]]:
        """This destination's connection, rate and backlog, for the ``stats`` document."""
        return {self.uplink.dest: self.uplink.status().as_dict()}

    async def run(self, daemon: DaemonView) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self.uplink.run(stop))
        await daemon.drained.wait()
        stop.set()
        await task


def uplink_destinations(config: Config) -> list[str]:
    """Destinations with a configured broker: ops, and ``func.<category>`` per functional platform."""
    if not config.uplink.enabled:
        return []
    return [OPS, *(destination(c) for c in config.uplink.functional)]


@dataclass(frozen=True)
class App:
    """A built daemon and the parts of it a caller may watch: its outbox and its uplinks."""

    daemon: Daemon
    outbox: Outbox
    uplinks: list[Uplink]


def build_app(
    config: Config,
    out: Path,
    camera: Camera | None = None,
    services: Sequence[Service] = (),
    sinks: Sequence[Sink] = (),
    first_stages: Sequence[Stage] = (),
) -> App:
    """Wire camera, stages, sinks and services; ``out`` receives the run's local output.

    ``camera`` replaces the configured one; ``sinks`` follow the outbox and the local frames and
    ``services`` the uplinks (the simulation's scoring sinks and sampler); ``first_stages`` run
    ahead of the configured chain (:class:`AppBuilder`). The outbox signs every envelope with the
    device key ``privacy.signing_key`` (required).
    """
    if not config.privacy.signing_key:
        raise KeyFileError("privacy.signing_key: not set; every outgoing envelope is signed with the device key "
                           "(make one with 'edged keygen device --out PREFIX')")
    signing = load_signing_key(resolve_path(config.privacy.signing_key))
    outbox: Outbox = open_from_config(config.outbox, resolve_path(config.device.data_dir), signing_key=signing)
    uplinks = [Uplink.from_config(config, dest, outbox) for dest in uplink_destinations(config)]
    for line in shared_broker_users(config):
        log.warning("%s", line)
    ops = next((u for u in uplinks if u.dest == OPS), None)
    builder = AppBuilder(quality=ops.suggested_quality if ops else lambda: config.output.jpeg_quality,
                         first=first_stages)

    def wake() -> None:
        for u in uplinks:
            u.wake()

    all_sinks: list[Sink] = [
        OutboxSink(outbox, wake),
        FrameWriter(out / "frames", config.output.save_every, config.output.jpeg_quality, allow_raw=False,
                    min_free_bytes=config.output.min_free_bytes),
        *sinks,
    ]
    all_services: list[Service] = [*(UplinkService(u) for u in uplinks), *services]
    daemon = Daemon(config, builder, all_sinks, summary_path=out / "summary.json", camera=camera,
                    services=all_services)
    return App(daemon, outbox, uplinks)


def build_daemon(
    config: Config,
    out: Path,
    camera: Camera | None = None,
    services: Sequence[Service] = (),
    sinks: Sequence[Sink] = (),
) -> Daemon:
    """The daemon of :func:`build_app`, for callers that need nothing else of it."""
    return build_app(config, out, camera, services, sinks).daemon
