"""Small pipeline stages that join the big ones: health checks and outgoing packaging (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
import cv2

from edged import wire
from edged.config import HealthConfig
from edged.health import HealthChecker
from edged.pipeline import FrameWork

EVENT_SCHEMA_VERSION = 1


class HealthStage:
    """Stage ``health``: block stability of the outgoing image vs the raw one, freeze/cover/defects.

    Raises the checker's events into ``work.events`` and leaves the report in ``work.health``.
    """

    name = "health"

    def __init__(self, config: HealthConfig) -> None:
        self.config = config
        self._checker: HealthChecker | None = None

    def __call__(self, work: FrameWork) -> None:
        meta = work.frame.meta
        checker = self._checker
        if checker is None or (checker.grid.width, checker.grid.height) != (meta.width, meta.height):
            checker = self._checker = HealthChecker.from_config(self.config, meta.width, meta.height)
        report = checker.check_frame(work.frame, work.deidentified, work.sensitive_rects)
        work.health = report
        for event in report.events:
            work.events.append({"type": "health", **event.to_dict()})


class PackageStage:
    """Stage ``package``: turns the selected upload package and the frame's events into envelopes.

    The package image is the de-identified frame, JPEG-encoded in memory at the quality the uplink
    suggests for the measured link rate (``quality()``); events go to ops as ``event`` envelopes.
    """

    name = "package"

    def __init__(self, device_id: str, quality: Callable[[], int]) -> None:
        self.device_id = device_id
        self.quality = quality
        self.packages = 0

    def __call__(self, work: FrameWork) -> None:
        meta = work.frame.meta
        package = work.upload
        if package is not None:
            if work.deidentified is None:
                raise RuntimeError("package stage: no de-identified image (the privacy stage must run first)")
            ok, jpeg = cv2.imencode(".jpg", work.deidentified, [cv2.IMWRITE_JPEG_QUALITY, int(self.quality())])
            if not ok:
                raise RuntimeError(f"package stage: JPEG encoding failed for image {meta.image_id}")
            work.outgoing.append(package.envelope(jpeg.tobytes(), self.device_id))
            self.packages += 1
        for event in work.events:
            work.outgoing.append(self.event_envelope(event, meta.video_id, meta.image_id, meta.timestamp))

    def event_envelope(self, event: dict[str, Any], video_id: str, image_id: str, timestamp: float) -> wire.Envelope:
        body = cbor2.dumps({"v": EVENT_SCHEMA_VERSION, **event})
        return wire.make(
            "event", "ops", "normal", body,
            video_id=video_id, image_id=image_id, created=timestamp, device=self.device_id,
        )
