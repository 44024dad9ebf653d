"""Stage ``package``: the selected image and the frame's events as outbox envelopes (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
import cv2

from edged.link import wire
from edged.link.destinations import OPS
from edged.stages.pipeline import FrameWork

EVENT_SCHEMA_VERSION = 1


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
            work.outgoing.append(self.event_envelope(event.body(), meta.video_id, meta.image_id, meta.timestamp))

    def event_envelope(self, event: dict[str, Any], video_id: str, image_id: str, timestamp: float) -> wire.Envelope:
        body = cbor2.dumps({"v": EVENT_SCHEMA_VERSION, **event})
        return wire.make(
            "event", OPS, "normal", body,
            video_id=video_id, image_id=image_id, created=timestamp, device=self.device_id,
        )
