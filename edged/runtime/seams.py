"""What services and the remote control see of the running daemon, as protocols.

``edged.runtime.daemon.Daemon`` satisfies :class:`DaemonView`; the services (uplink, remote control,
serial console, config reload, systemd notify) and :class:`edged.remote.commands.RemoteControl` are
written against these protocols, so a renamed daemon member is a type error, not a silent default.
This module imports only the config, so every room that may import the runtime can use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from edged.config import Config


class ApplyError(RuntimeError):
    """A new config could not be applied; the daemon is back on the previous one."""


class StopView(Protocol):
    """Whether a stop was requested, and why."""

    @property
    def reason(self) -> str: ...

    @property
    def event(self) -> asyncio.Event: ...


class CountersView(Protocol):
    """The run's frame counters and per-stage latency."""

    @property
    def captured(self) -> int: ...

    @property
    def processed(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    def stage_summary(self) -> dict[str, dict[str, float]]:
        """p50/p95/mean per stage over the recent window."""
        ...


@runtime_checkable
class LinkReporter(Protocol):
    """A service with uplinks: per destination its connection, rate, backlog and drain estimate."""

    def link_status(self) -> dict[str, dict[str, Any]]: ...


class DaemonView(Protocol):
    """The daemon as a service or the remote control sees it."""

    @property
    def config(self) -> Config: ...

    @property
    def stop(self) -> StopView: ...

    @property
    def stats(self) -> CountersView: ...

    @property
    def heartbeat(self) -> float:
        """Monotonic time of the last frame through the pipeline (0.0 before the first)."""
        ...

    @property
    def drained(self) -> asyncio.Event:
        """Set once every captured frame has been processed and sunk."""
        ...

    @property
    def reload_requested(self) -> asyncio.Event: ...

    @property
    def event_listeners(self) -> list[Callable[[dict[str, Any]], None]]: ...

    def link_status(self) -> dict[str, dict[str, Any]]: ...

    def device_stats(self) -> dict[str, Any]: ...

    def queue_depths(self) -> dict[str, tuple[int, int]]: ...

    async def apply_config(self, new: Config, up_timeout_s: float = 10.0) -> set[str]: ...


class Service(Protocol):
    """A long-running companion task (uplink, remote control, watchdog).

    ``run`` starts with the daemon; it must return soon after ``daemon.drained`` is set (every
    captured frame processed and sunk), finishing its own work first (e.g. a last outbox flush).
    """

    name: str

    async def run(self, daemon: DaemonView) -> None: ...
