"""Send what a stopped daemon left in its outbox, as a restarted one would, with the cached queue released fast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from edged.config import Config, resolve_path
from edged.link.outbox import Outbox, open_from_config
from edged.link.uplink import Uplink

Tick = Callable[[Outbox, list[Uplink]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Drained:
    """How a drain went: messages waiting at its start and at its end, its length, the outbox's stats."""

    left_at_start: int
    left: int
    seconds: float
    stats: dict[str, Any]


async def drain_outbox(config: Config, dests: list[str], cached_period_s: float, timeout_s: float,
                       tick_s: float = 0.2, on_tick: Tick | None = None) -> Drained:
    """Reopen the outbox, run one uplink per destination until it is empty or ``timeout_s`` passed.

    ``on_tick(outbox, uplinks)`` is awaited every ``tick_s`` and once at the end (the simulation samples there).
    """
    outbox = open_from_config(config.outbox, resolve_path(config.device.data_dir))
    select = msgspec.structs.replace(config.select, cached_period_s=cached_period_s)
    fast = msgspec.structs.replace(config, select=select)
    uplinks = [Uplink.from_config(fast, d, outbox) for d in dests]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(u.run(stop), name=f"drain-{u.dest}") for u in uplinks]
    t0 = time.monotonic()
    left_at_start = outbox.pending()[0]
    try:
        while time.monotonic() - t0 < timeout_s:
            if on_tick is not None:
                await on_tick(outbox, uplinks)
            if outbox.pending()[0] == 0:
                break
            await asyncio.sleep(tick_s)
        if on_tick is not None:
            await on_tick(outbox, uplinks)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    drained = Drained(left_at_start, outbox.pending()[0], round(time.monotonic() - t0, 2), outbox.stats())
    outbox.close()
    return drained
