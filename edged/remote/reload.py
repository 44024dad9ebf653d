"""Reloading the config file on SIGHUP, the systemd way (``ExecReload=/bin/kill -HUP $MAINPID``).

On each reload request of the daemon (:meth:`edged.runtime.daemon.Daemon.request_reload`) the file
is read, validated and applied by :meth:`edged.remote.commands.RemoteControl.reload_file`, the path
a remote ``set`` takes (atomic apply, rollback when the pipeline carries no frame). Under systemd
the service says ``RELOADING=1`` (with ``MONOTONIC_USEC``) before and ``READY=1`` after, so
``systemctl reload`` waits for the outcome. A bad file is one log line and the running config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from edged.remote.commands import CommandError, RemoteControl
from edged.runtime.notify import Notifier
from edged.runtime.seams import ApplyError, DaemonView

log = logging.getLogger("edged.remote.reload")

RESTART_SECTIONS = ("outbox", "uplink", "output")
"""Sections read once at start (the outbox, the uplinks, the run folder): a reload keeps the running
ones and says so."""


class FileReloadService:
    """Applies the config file again on every reload request (a daemon :class:`~edged.runtime.seams.Service`)."""

    name = "config-reload"

    def __init__(self, control: RemoteControl, path: Path, notifier: Notifier | None = None) -> None:
        self.control = control
        self.path = Path(path)
        self.notifier = notifier if notifier is not None else Notifier()
        self.reloads = 0
        self.failed = 0

    async def run(self, daemon: DaemonView) -> None:
        self.control.attach(daemon)
        try:
            while not daemon.drained.is_set():
                waits = [asyncio.ensure_future(daemon.reload_requested.wait()),
                         asyncio.ensure_future(daemon.drained.wait())]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                if daemon.drained.is_set() or daemon.stop.event.is_set():
                    return
                daemon.reload_requested.clear()
                await self._reload(daemon)
        finally:
            self.notifier.close()

    async def _reload(self, daemon: DaemonView) -> None:
        """One reload, bracketed by RELOADING=1 and READY=1 once systemd was told the daemon is ready."""
        told = bool(daemon.heartbeat)  # READY=1 went out with the first frame (edged.runtime.notify)
        if told:
            self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}",
                               f"STATUS=reloading {self.path}")
        log.info("SIGHUP: reloading %s", self.path)
        old = daemon.config
        status = "processing frames"
        try:
            body = await self.control.reload_file(self.path)
            self.reloads += 1
            later = [name for name in RESTART_SECTIONS if getattr(old, name) != getattr(daemon.config, name)]
            if later:
                log.warning("config file %s: %s changed; takes effect at the next restart", self.path, ", ".join(later))
            if body.get("changed"):
                status = f"processing frames (config reloaded: {', '.join(body['changed'])})"
        except (CommandError, ApplyError):  # the control logged the one line that says why
            self.failed += 1
            status = f"processing frames (reload of {self.path} failed; running config kept)"
        finally:
            if told:
                with contextlib.suppress(Exception):
                    self.notifier.send("READY=1", f"STATUS={status}")
