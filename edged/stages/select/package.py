"""Upload packages: a selected image plus every track's observation in it.

A package is built by the selector without pixels; whoever encodes the de-identified image adds it
with :meth:`UploadPackage.body` (CBOR bytes) or :meth:`UploadPackage.envelope` (outbox envelope,
``kind="package"``, ``dest="ops"``, ``prio`` ``immediate`` or ``cached``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cbor2
import numpy as np

from edged.core.classes import CLASS_NAMES
from edged.core.types import FrameMeta
from edged.link.destinations import OPS

PACKAGE_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class UploadPackage:
    """One selected image and the observations of every selected-class track detected in it."""

    meta: FrameMeta
    immediate: bool
    """Send at once (large, confident, clear of the border: ``rules.sends_immediately``) rather than
    through the cached queue."""
    trigger_track_id: int
    """The track whose new best image this is."""
    track_ids: np.ndarray
    class_ids: np.ndarray
    observations: np.ndarray
    """Rows of :data:`edged.stages.track.observations.OBS_DTYPE`, row ``i`` belongs to ``track_ids[i]``."""

    @property
    def priority(self) -> str:
        return "immediate" if self.immediate else "cached"

    def objects(self) -> list[dict[str, Any]]:
        """The observations as plain maps (class by name, ground point ``None`` when unknown)."""
        out = []
        for tid, cid, row in zip(self.track_ids.tolist(), self.class_ids.tolist(), self.observations, strict=True):
            gx, gy = (float(v) for v in row["ground"])
            out.append({
                "track": int(tid),
                "class": CLASS_NAMES[int(cid)],
                "box": [float(v) for v in row["box"]],
                "angle": float(row["angle"]),
                "score": float(row["score"]),
                "ground": None if math.isnan(gx) or math.isnan(gy) else [gx, gy],
            })
        return out

    def to_dict(self, image: bytes | None = None, image_format: str = "jpeg") -> dict[str, Any]:
        m = self.meta
        d: dict[str, Any] = {
            "v": PACKAGE_SCHEMA_VERSION,
            "image_id": m.image_id,
            "frame_index": m.frame_index,
            "video_id": m.video_id,
            "timestamp": m.timestamp,
            "exposure": {"mode": str(m.exposure.mode), "shutter_us": m.exposure.shutter_us, "gain": m.exposure.gain},
            "position": {"lat": m.position.lat, "lon": m.position.lon, "alt": m.position.alt},
            "width": m.width,
            "height": m.height,
            "immediate": self.immediate,
            "trigger": self.trigger_track_id,
            "objects": self.objects(),
        }
        if image is not None:
            d["image"] = bytes(image)
            d["image_format"] = image_format
        return d

    def body(self, image: bytes, image_format: str = "jpeg") -> bytes:
        """CBOR body: the package map with the encoded de-identified image (binary stays binary)."""
        return cbor2.dumps(self.to_dict(image, image_format))

    def envelope(self, image: bytes, device: str = "", image_format: str = "jpeg"):  # -> edged.link.wire.Envelope
        """The outbox envelope for this package (``dest="ops"``, priority by the immediate-or-cached decision)."""
        from edged.link import wire

        return wire.make(
            "package", OPS, self.priority, self.body(image, image_format),
            video_id=self.meta.video_id, image_id=self.meta.image_id, created=self.meta.timestamp, device=device,
        )
