"""sd_notify over a real unix datagram NOTIFY_SOCKET: READY once frames flow, WATCHDOG while they
flow (and not while the pipeline stalls), STOPPING on stop."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edged.runtime.daemon import StopState
from edged.runtime.notify import Notifier, NotifyService, watchdog_interval_s
from tests.remote_rig import running_daemon, write_config


class SystemdSocket:
    """What systemd listens on: a unix datagram socket; records (time, message) pairs."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)
        self.address = address
        self.received: list[tuple[float, str]] = []

    def poll(self) -> list[tuple[float, str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.received
            now = time.monotonic()
            self.received += [(now, line) for line in data.decode().split("\n")]

    def listen(self) -> None:
        """Record arrival times as datagrams come (call inside the running loop)."""
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self.poll)

    def lines(self, prefix: str) -> list[float]:
        return [t for t, line in self.poll() if line.startswith(prefix)]

    def close(self) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        except RuntimeError:
            pass
        self.sock.close()


@dataclass
class Pipeline:
    """A stand-in with what NotifyService reads of the daemon; frames flow while ``flowing``."""

    heartbeat: float = 0.0
    stop: StopState = field(default_factory=StopState)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    config: Any = field(default_factory=lambda: SimpleNamespace(systemd=SimpleNamespace(heartbeat_stale_s=0.3)))
    flowing: bool = False

    async def frames(self) -> None:
        while not self.drained.is_set():
            if self.flowing:
                self.heartbeat = time.monotonic()
            await asyncio.sleep(0.02)


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.mark.slow
def test_ready_watchdog_stall_and_stopping(tmp_path: Path) -> None:
    systemd = SystemdSocket(str(tmp_path / "notify.sock"))
    service = NotifyService(Notifier(systemd.address), interval_s=0.1)
    pipeline = Pipeline()

    async def scenario() -> None:
        systemd.listen()
        frames = asyncio.create_task(pipeline.frames())
        task = asyncio.create_task(service.run(pipeline))
        await settle(0.3)
        assert systemd.lines("READY=1") == [], "no READY before the first frame"

        pipeline.flowing = True
        t_flow = time.monotonic()
        await settle(1.0)
        ready = systemd.lines("READY=1")
        assert len(ready) == 1 and ready[0] - t_flow < 0.2
        pings = systemd.lines("WATCHDOG=1")
        assert 5 <= len(pings) <= 13, pings  # every 0.1 s for 1 s (slack for a loaded machine)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 0.35

        pipeline.flowing = False  # the pipeline stalls
        t_stall = time.monotonic()
        await settle(1.2)
        during = [t for t in systemd.lines("WATCHDOG=1") if t > t_stall]
        assert during and max(during) - t_stall < 0.3 + 0.15, "pings stop once the heartbeat is stale"
        assert not [t for t in during if t > t_stall + 0.5]
        assert any(line.startswith("STATUS=stalled") for _, line in systemd.poll())

        pipeline.flowing = True  # frames flow again: pings resume at once
        t_back = time.monotonic()
        await settle(0.5)
        resumed = [t for t in systemd.lines("WATCHDOG=1") if t > t_back]
        assert resumed and resumed[0] - t_back < 0.6 and len(resumed) >= 3

        pipeline.stop.request("SIGTERM")
        await settle(0.1)
        assert len(systemd.lines("STOPPING=1")) == 1
        pipeline.drained.set()
        await asyncio.wait_for(task, 2)
        await frames
        assert service.withheld == 1

    try:
        asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        systemd.close()


def test_abstract_socket_and_no_socket() -> None:
    name = f"@edged-test-{uuid.uuid4().hex}"
    systemd = SystemdSocket(name)
    pipeline = Pipeline(flowing=True)

    async def scenario() -> None:
        systemd.listen()
        frames = asyncio.create_task(pipeline.frames())
        task = asyncio.create_task(NotifyService(Notifier(name), interval_s=0.05).run(pipeline))
        await settle(0.3)
        assert systemd.lines("READY=1") and systemd.lines("WATCHDOG=1")
        pipeline.drained.set()
        await asyncio.wait_for(task, 2)
        await frames

        quiet = Pipeline(flowing=True)
        idle = asyncio.create_task(NotifyService(Notifier(""), interval_s=0.05).run(quiet))
        await settle(0.1)
        quiet.drained.set()
        await asyncio.wait_for(idle, 2)  # without NOTIFY_SOCKET it just waits for the end

    try:
        asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        systemd.close()


def test_watchdog_interval_from_the_environment() -> None:
    pid = str(os.getpid())
    assert watchdog_interval_s({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": pid}) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000"}) == 1.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None  # not ours
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}) is None


def test_with_a_real_daemon(tmp_path: Path) -> None:
    """The real daemon's heartbeat drives READY and WATCHDOG; a stop sends STOPPING."""
    systemd = SystemdSocket(str(tmp_path / "notify.sock"))
    path = write_config(tmp_path)
    service = NotifyService(Notifier(systemd.address), interval_s=0.05)

    async def scenario() -> None:
        systemd.listen()
        async with running_daemon(path, lambda startup: [service]):
            await settle(0.5)
            assert len(systemd.lines("READY=1")) == 1
            assert len(systemd.lines("WATCHDOG=1")) >= 5
        assert len(systemd.lines("STOPPING=1")) == 1

    try:
        asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        systemd.close()
