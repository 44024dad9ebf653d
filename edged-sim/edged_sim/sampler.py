"""A daemon service that samples the run over time and stages the broker outage.

Every ``period_s`` it records wall time, scene time, frames processed, the outbox backlog per
destination, whether the broker is up and which uplinks are connected. When the scene clock (frames
captured / fps) reaches the outage start it stops the broker; at the outage end it starts it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from edged_sim.broker import Broker

log = logging.getLogger("edged_sim")


@dataclass(frozen=True)
class Outage:
    """Broker down from scene second ``start_s`` for ``length_s`` scene seconds."""

    start_s: float
    length_s: float

    @classmethod
    def parse(cls, text: str) -> Outage:
        """``START:LENGTH`` in scene seconds, e.g. ``120:60``."""
        try:
            a, b = (float(v) for v in text.split(":"))
        except ValueError:
            raise ValueError(f"outage {text!r}: expected START:LENGTH in scene seconds, e.g. 120:60") from None
        if a < 0 or b <= 0:
            raise ValueError(f"outage {text!r}: need START >= 0 and LENGTH > 0")
        return cls(a, b)


@dataclass
class Series:
    """Samples over the run (parallel lists; ``backlog`` per destination)."""

    wall_s: list[float] = field(default_factory=list)
    scene_s: list[float] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)
    broker_up: list[bool] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    """``run`` while the scene plays, ``drain`` after it ended."""
    backlog: dict[str, list[int]] = field(default_factory=dict)
    connected: dict[str, list[bool]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Outage start/end with wall and scene time."""

    def add(self, wall: float, scene: float, processed: int, up: bool, phase: str,
            backlog: dict[str, int], connected: dict[str, bool]) -> None:
        self.wall_s.append(round(wall, 3))
        self.scene_s.append(round(scene, 3))
        self.processed.append(processed)
        self.broker_up.append(up)
        self.phase.append(phase)
        for d, n in backlog.items():
            self.backlog.setdefault(d, []).append(n)
        for d, c in connected.items():
            self.connected.setdefault(d, []).append(c)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall_s, "scene_s": self.scene_s, "processed": self.processed,
            "broker_up": self.broker_up, "phase": self.phase, "backlog": self.backlog,
            "connected": self.connected, "events": self.events,
        }


class Sampler:
    """Daemon service: samples :class:`Series` and runs the :class:`Outage` (see module doc)."""

    name = "sim-sampler"

    def __init__(self, outbox: Any, dests: list[str], uplinks: list[Any], broker: Broker, fps: float,
                 outage: Outage | None, started: float, period_s: float = 0.25,
                 max_wall_s: float | None = None) -> None:
        self.outbox = outbox
        self.dests = dests
        self.uplinks = uplinks
        self.broker = broker
        self.fps = fps
        self.outage = outage
        self.started = started
        self.period_s = period_s
        self.series = Series()
        self.outage_state = "pending" if outage else "none"
        self.max_wall_s = max_wall_s
        self.timed_out = False

    async def sample(self, scene_s: float, processed: int, phase: str) -> None:
        backlog = {}
        for d in self.dests:
            n, _ = await asyncio.to_thread(self.outbox.pending, d)
            backlog[d] = n
        connected = {u.dest: bool(u.connected) for u in self.uplinks}
        self.series.add(time.monotonic() - self.started, scene_s, processed, self.broker.running(), phase,
                        backlog, connected)

    async def _outage_step(self, scene_s: float) -> None:
        o = self.outage
        if o is None:
            return
        if self.outage_state == "pending" and scene_s >= o.start_s:
            await asyncio.to_thread(self.broker.stop)
            self.outage_state = "down"
            self._event("broker stopped", scene_s)
        elif self.outage_state == "down" and scene_s >= o.start_s + o.length_s:
            await asyncio.to_thread(self.broker.start)
            self.outage_state = "done"
            self._event("broker started", scene_s)

    def _event(self, what: str, scene_s: float) -> None:
        wall = time.monotonic() - self.started
        self.series.events.append({"event": what, "wall_s": round(wall, 3), "scene_s": round(scene_s, 3)})
        log.info("sim: %s at scene %.1f s (wall %.1f s)", what, scene_s, wall)

    async def restore_broker(self) -> None:
        """Start the broker if the run ended while it was down (the outage outlasted the scene)."""
        if self.outage_state == "down":
            await asyncio.to_thread(self.broker.start)
            self.outage_state = "done"
            at = self.series.scene_s[-1] if self.series.scene_s else 0.0
            self._event("broker started (scene ended during the outage)", at)

    async def run(self, daemon: Any) -> None:
        while not daemon.drained.is_set():
            scene_s = daemon.stats.captured / self.fps
            if self.max_wall_s is not None and not self.timed_out and time.monotonic() - self.started > self.max_wall_s:
                self.timed_out = True
                self._event("wall-clock limit reached: stopping the scene", scene_s)
                daemon.request_stop(f"simulation wall-clock limit {self.max_wall_s:g} s")
            await self._outage_step(scene_s)
            await self.sample(scene_s, daemon.stats.processed, "run")
            try:
                await asyncio.wait_for(daemon.drained.wait(), self.period_s)
            except TimeoutError:
                pass
