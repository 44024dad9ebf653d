"""End to end: the real daemon on the fake camera drives systemd's watchdog over a real socket.

A gate stage stalls the pipeline; WATCHDOG=1 must stop while it is stalled (systemd would then
restart the service) and resume when frames flow again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from edged.config import from_dict
from edged.runtime.daemon import Daemon
from edged.runtime.notify import Notifier, NotifyService
from edged.stages.pipeline import FrameWork
from tests.test_daemon import Builder
from tests.test_notify_systemd import SystemdSocket


class Gate:
    """A stage that blocks while the gate is closed (a hung inference, a stuck camera driver)."""

    name = "gate"

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()

    def __call__(self, work: FrameWork) -> None:
        self.open.wait()


@pytest.mark.slow
def test_watchdog_follows_the_real_pipeline(tmp_path: Path) -> None:
    systemd = SystemdSocket(str(tmp_path / "notify.sock"))
    gate = Gate()
    config = from_dict({
        "camera": {"backend": "fake", "width": 320, "height": 192, "fps": 20.0, "fake": {"realtime": True}},
        "systemd": {"heartbeat_stale_s": 0.4},
    })
    daemon = Daemon(config, Builder([gate]), [], services=[NotifyService(Notifier(systemd.address), 0.1)])

    def pings_between(t0: float, t1: float) -> int:
        return sum(1 for t in systemd.lines("WATCHDOG=1") if t0 <= t < t1)

    async def scenario() -> tuple[int, int, int]:
        systemd.listen()
        run = asyncio.create_task(daemon.run(duration=30))
        while not systemd.lines("READY=1"):
            await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await asyncio.sleep(1.0)
        gate.open.clear()  # the pipeline stalls
        t1 = time.monotonic()
        await asyncio.sleep(1.5)
        gate.open.set()  # and recovers
        t2 = time.monotonic()
        await asyncio.sleep(1.0)
        t3 = time.monotonic()
        daemon.request_stop("test over")
        await asyncio.wait_for(run, 20)
        # skip the stale window right after the stall starts (pings may go on until it passes)
        return pings_between(t0, t1), pings_between(t1 + 0.6, t2), pings_between(t2 + 0.3, t3)

    try:
        flowing, stalled, resumed = asyncio.run(asyncio.wait_for(scenario(), 40))
        stopping = len(systemd.lines("STOPPING=1"))
    finally:
        systemd.close()
    assert flowing >= 5, flowing
    assert stalled == 0, stalled
    assert resumed >= 3, resumed
    assert stopping == 1
