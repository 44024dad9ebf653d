"""systemd notification (sd_notify) from the pipeline's heartbeat.

- ``READY=1`` once the first frame has passed the pipeline (not merely when the process started),
- ``WATCHDOG=1`` every half ``WATCHDOG_USEC``, but only while frames flow: when no frame has passed
  for ``systemd.heartbeat_stale_s`` the pings stop, so systemd's ``WatchdogSec`` restarts a
  stalled daemon; a ping goes out again as soon as frames flow,
- ``STOPPING=1`` when a stop is requested (SIGTERM), and ``STATUS=...`` lines for ``systemctl status``,
- ``RELOADING=1`` (with ``MONOTONIC_USEC``) and then ``READY=1`` around a reload of the config file on
  SIGHUP, sent by :mod:`edged.remote.reload` through its own :class:`Notifier`.

Without ``NOTIFY_SOCKET`` (not started by systemd) the service does nothing. A socket name that
starts with ``@`` is in the abstract namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

from edged.runtime.seams import DaemonView

log = logging.getLogger("edged.runtime.notify")

RECOVERY_POLL_S = 0.5
"""While pings are withheld, how often freshness is checked, so a ping follows recovery quickly."""


class Notifier:
    """Sends sd_notify datagrams; every failure is logged once and otherwise ignored."""

    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.address: str | None = None
        if address:
            self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as err:
            if not self._warned:
                log.warning("sd_notify to %r failed: %s", self.address, err)
                self._warned = True
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(environ: dict[str, str] | None = None) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, or ``None`` when systemd asked for no watchdog (or
    ``WATCHDOG_PID`` names another process)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; no watchdog pings", usec)
        return None
    return value / 2e6 if value > 0 else None


class NotifyService:
    """READY / WATCHDOG / STOPPING for systemd (a daemon :class:`~edged.runtime.seams.Service`).

    Works with anything that has ``heartbeat`` (monotonic time of the last processed frame, 0 before
    the first), ``stop.event``, ``drained`` and ``config.systemd.heartbeat_stale_s``.
    """

    name = "systemd-notify"

    def __init__(
        self,
        notifier: Notifier | None = None,
        interval_s: float | None = None,
        stale_s: float | None = None,
    ) -> None:
        self.notifier = notifier if notifier is not None else Notifier()
        self.interval_s = interval_s if interval_s is not None else watchdog_interval_s()
        self.stale_s = stale_s
        self.pings = 0
        self.withheld = 0

    def _stale_s(self, daemon: DaemonView) -> float:
        return self.stale_s if self.stale_s is not None else daemon.config.systemd.heartbeat_stale_s

    async def run(self, daemon: DaemonView) -> None:
        if not self.notifier.enabled:
            await daemon.drained.wait()
            return
        try:
            stopping = asyncio.create_task(self._on_stop(daemon))
            try:
                if await self._wait_first_frame(daemon):
                    self.notifier.send("READY=1", "STATUS=processing frames")
                    log.info("systemd: READY=1 (frames flowing)")
                    await self._watchdog(daemon)
            finally:
                await stopping
        finally:
            self.notifier.close()

    async def _on_stop(self, daemon: DaemonView) -> None:
        await _first(daemon.stop.event.wait(), daemon.drained.wait())
        reason = daemon.stop.reason or "stop requested"
        self.notifier.send("STOPPING=1", f"STATUS=stopping ({reason}), finishing frames in flight")

    async def _wait_first_frame(self, daemon: DaemonView) -> bool:
        """True once a frame has passed; False if the daemon drained first."""
        while not daemon.heartbeat:
            if daemon.drained.is_set() or daemon.stop.event.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.drained.wait(), 0.05)
        return True

    async def _watchdog(self, daemon: DaemonView) -> None:
        if self.interval_s is None:
            await daemon.drained.wait()
            return
        stalled = False
        last_ping = 0.0
        while not daemon.drained.is_set():
            now = time.monotonic()
            age = now - daemon.heartbeat
            if age <= self._stale_s(daemon):
                if now - last_ping >= self.interval_s or stalled:
                    self.notifier.send("WATCHDOG=1")
                    self.pings += 1
                    last_ping = now
                    if stalled:
                        log.info("systemd: frames flowing again; watchdog pings resumed")
                        self.notifier.send("STATUS=processing frames")
                        stalled = False
            elif not stalled:
                stalled = True
                self.withheld += 1
                log.warning("systemd: no frame for %.1f s; withholding watchdog pings", age)
                self.notifier.send(f"STATUS=stalled: no frame for {age:.0f} s")
            wait = RECOVERY_POLL_S if stalled else max(0.0, last_ping + self.interval_s - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.drained.wait(), min(wait, RECOVERY_POLL_S, self.interval_s))


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
