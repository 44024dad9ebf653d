"""``[uplink]``: the MQTT links to the operations platform and the functional platforms."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edged.config.base import Bounds, Fraction, Section
from edged.config.broker import BrokerConfig


class UplinkBrokerConfig(BrokerConfig):
    """One uplink's MQTT connection: the operations platform's broker or a functional platform's."""

    topic_prefix: str = ""
    """Messages go to ``<topic_prefix>/<kind>``; "" gives ``edged/<device.id>/<destination>``,
    e.g. ``edged/rsu-0001/func.face/sensitive``."""
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 32
    """Messages published and awaiting PUBACK; 32 keeps a 200 ms-RTT cellular link busy while a
    disconnect re-sends at most 32."""


class UplinkConfig(Section):
    """MQTT uplink to the operations platform and the functional platforms."""

    enabled: bool = False
    """Off by default: the demo runs without a broker (messages wait in the outbox)."""
    ops: UplinkBrokerConfig = msgspec.field(default_factory=UplinkBrokerConfig)
    """De-identified images, events and telemetry. Never carries a sensitive record."""
    functional: dict[Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}$")], UplinkBrokerConfig] = {}
    """Functional platforms by sensitive category (``face``, ``plate``): destination ``func.<name>``,
    each on its own connection. A category without an entry keeps its records in the outbox."""
    reconnect_min_s: Annotated[float, Bounds(0.1, 3600)] = 1.0
    """First reconnect delay (s); doubles on each failure up to ``reconnect_max_s``."""
    reconnect_max_s: Annotated[float, Bounds(0.1, 86_400)] = 60.0
    """Longest wait (s) between attempts; a minute bounds the extra delay after an outage without a
    thousand units hammering a recovering broker."""
    reconnect_jitter: Fraction = 0.5
    """Each delay is drawn from [d*(1-jitter), d]: units that lost the same broker spread out."""
    connect_timeout_s: Annotated[float, Bounds(1, 600)] = 10.0
    """Wait (s) for CONNACK; 10 s covers a TCP + TLS handshake over a poor cellular link and bounds a
    broker that refuses silently."""
    rate_window_s: Annotated[float, Bounds(1, 3600)] = 30.0
    """The link rate is measured over this much recent busy time (s): long enough to average a few
    200 kB images on a 1 Mbit/s link, short enough to follow a cellular link's changes."""
    quality_min: Annotated[int, msgspec.Meta(ge=10, le=100)] = 50
    """Lowest JPEG quality the link may push images to; below ~50 plates blur into blocks."""
    quality_max: Annotated[int, msgspec.Meta(ge=10, le=100)] = 90
    """Quality on a fast link; above 90 files grow fast for little visible gain."""
    quality_full_rate_bps: Annotated[float, Bounds(1000, 1e10)] = 2_000_000.0
    """Measured rate (bytes/s) at or above which ``quality_max`` is used, falling linearly to
    ``quality_min`` at zero; 2 MB/s carries ten 200 kB images a second."""

    def __post_init__(self) -> None:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.quality_max < self.quality_min:
            raise ValueError("quality_max must be >= quality_min")
