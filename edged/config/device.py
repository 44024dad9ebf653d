"""``[device]``: the unit's name, its state folder and its fixed position."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edged.config.base import Bounds, Section


class PositionConfig(Section):
    """Fixed camera position (WGS-84). A roadside unit does not move; a GPS source may override it."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] = 0.0
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] = 0.0
    alt: Annotated[float, Bounds(-1000, 10_000)] = 0.0


class DeviceConfig(Section):
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "rsu-0001"
    """Device name; used in MQTT topics, so limited to topic-safe characters."""
    data_dir: str = "data"
    """Persistent state (outbox, track-id counter, applied config), relative to the working directory."""
    position: PositionConfig = msgspec.field(default_factory=PositionConfig)
