"""``[output]``: the demo's local frames and run summary."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edged.config.base import Bounds, Section


class OutputConfig(Section):
    dir: str = "out"
    """Local output folder for the demo: frames, run summary."""
    save_every: Annotated[int, Bounds(0, 1_000_000)] = 1
    """Write every n-th processed frame as JPEG (0: none)."""
    jpeg_quality: Annotated[int, msgspec.Meta(ge=10, le=100)] = 85
    min_free_bytes: Annotated[int, Bounds(0, 1 << 40)] = 64 << 20
    """Free disk space (bytes) below which no frame is written, so local frames never take the room
    of an outbox on the same disk."""
