"""``[systemd]``: the service manager's watchdog."""

from __future__ import annotations

from typing import Annotated

from edged.config.base import Bounds, Section


class SystemdConfig(Section):
    """Service manager integration (sd_notify READY/WATCHDOG/STOPPING)."""

    heartbeat_stale_s: Annotated[float, Bounds(0.1, 3600)] = 10.0
    """Watchdog pings stop when no frame has passed the pipeline for this long (s): longer than a
    camera restart while a config is applied (``remote.apply_timeout_s``), far shorter than
    ``WatchdogSec`` in edged.service (60 s)."""
