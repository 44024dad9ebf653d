"""``[outbox]``: the persistent store of every outgoing message."""

from __future__ import annotations

from typing import Annotated, Literal

from edged.config.base import Bounds, Section


class OutboxConfig(Section):
    """The persistent outbox: every outgoing message is stored in SQLite until its receiver
    acknowledges it (see ``edged.link.outbox`` for the eviction and fsync policy)."""

    path: str = "outbox.sqlite"
    """SQLite file; a relative path is relative to ``device.data_dir``."""
    budget_bytes: Annotated[int, Bounds(65_536, 1 << 40)] = 1 << 30
    """Ring budget (bytes: stored envelopes + 128 B each), capped at start to 80 % of the disk's room;
    1 GiB holds about three hours of a busy road's uploads through an outage."""
    synchronous: Literal["full", "normal"] = "full"
    """``full`` fsyncs the WAL on every commit, so a stored message survives power loss (an SD card
    keeps up); ``normal`` survives a crash of the process but may lose the last commits on power loss."""
    check_on_open: bool = True
    """Run ``PRAGMA quick_check`` at start: a damaged file is reported at once instead of failing
    later; costs about a second per GB."""
    reserve_bytes: Annotated[int, Bounds(0, 1 << 34)] = 8 << 20
    """Disk space (bytes, 0 disables) kept preallocated beside the database (``<path>.reserve``) and
    released when the disk fills, so the outbox can still checkpoint, evict and ack; 8 MiB is twice
    SQLite's usual WAL ceiling plus an image."""
