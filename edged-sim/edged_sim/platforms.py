"""The platforms' receivers in their own process, so they do not take CPU time (or the GIL) from
the daemon under test within its process.

Child (``python -m edged_sim.platforms --port P --device ID --folder DIR --dest ops --dest func.face``):
one :class:`edged_platform.receiver.Receiver` per destination, subscribed to ``edged/<device>/<dest>/#`` and
storing into ``DIR/<dest>`` (a :class:`~edged_platform.store.SegmentStore`, one file per video). It
prints ``ready`` once every receiver is subscribed, appends ``<dest> <message id> <unix time>`` to
``DIR/arrivals.txt`` for each new message (line-buffered), and on SIGTERM stops and writes the
receivers' counters to ``DIR/receivers.json``.

Parent: :class:`PlatformProcess` starts it, waits for ``ready``, reads arrivals, stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from edged.link.destinations import OPS
from edged_platform.store import SegmentStore

READY = "ready"


async def _serve(port: int, device: str, folder: Path, dests: list[str], device_keys: list[Path]) -> None:
    from edged.link.wire import trusted_keys
    from edged_platform.receiver import Receiver

    keys = trusted_keys(device_keys)

    folder.mkdir(parents=True, exist_ok=True)
    arrivals = open(folder / "arrivals.txt", "a", buffering=1, encoding="ascii")  # noqa: SIM115 - closed below
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def arrived(dest: str):  # noqa: ANN202
        return lambda env: arrivals.write(f"{dest} {env.id} {time.time():.6f}\n")

    receivers = {
        d: Receiver("127.0.0.1", port, f"edged/{device}/{d}/#", SegmentStore(folder / d, device_keys=keys),
                    client_id=f"sim-platform-{d}", keep_order=(d == OPS), on_envelope=arrived(d), device_keys=keys)
        for d in dests
    }
    tasks = [asyncio.create_task(r.run(stop)) for r in receivers.values()]
    waiting = asyncio.gather(*(r.subscribed.wait() for r in receivers.values()))
    either: set[asyncio.Future[Any]] = {asyncio.ensure_future(waiting), asyncio.ensure_future(stop.wait())}
    done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():
        print(READY, flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)
    arrivals.close()
    stats = {
        d: {"received": r.stats.received, "stored": r.stats.stored, "duplicates": r.stats.duplicates,
            "malformed": r.stats.malformed, "rejected": dict(r.stats.rejected), "connects": r.stats.connects,
            **({"order": r.stats.arrivals} if r.keep_order else {})}
        for d, r in receivers.items()
    }
    (folder / "receivers.json").write_text(json.dumps(stats))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edged_sim.platforms", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--dest", action="append", required=True)
    p.add_argument("--device-key", action="append", required=True, type=Path, help="the device's .pub (repeatable)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="platforms %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)  # aiomqtt's socket errors while the broker is down
    asyncio.run(_serve(args.port, args.device, args.folder, args.dest, args.device_key))
    return 0


class PlatformError(RuntimeError):
    """The receivers' process did not start or subscribe."""


class PlatformProcess:
    """Parent side: the receivers' process, its stores and what arrived when."""

    def __init__(self, folder: Path, dests: list[str], device: str, port: int, device_key: Path) -> None:
        self.folder = Path(folder)
        self.device_key = Path(device_key)
        """The device's public key: the receivers store only what it signed."""
        self.dests = dests
        self.device = device
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None
        self.stats: dict[str, dict[str, Any]] = {}
        self._read = 0
        self._arrivals: dict[str, float] = {}

    async def start(self, timeout_s: float = 30.0) -> None:
        args = [sys.executable, "-m", "edged_sim.platforms", "--port", str(self.port), "--device", self.device,
                "--folder", str(self.folder), "--device-key", str(self.device_key)]
        for d in self.dests:
            args += ["--dest", d]
        self.proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        except TimeoutError:
            line = b""
        if line.decode().strip() != READY:
            await self.close()
            raise PlatformError(
                f"platform receivers did not subscribe within {timeout_s:g} s (broker port {self.port})"
            )

    @property
    def arrivals(self) -> dict[str, float]:
        """Message id -> Unix time of its first arrival at a receiver."""
        path = self.folder / "arrivals.txt"
        try:
            with open(path, encoding="ascii") as f:
                f.seek(self._read)
                chunk = f.read()
        except FileNotFoundError:
            return self._arrivals
        complete = chunk[: chunk.rfind("\n") + 1]
        self._read += len(complete)
        for line in complete.splitlines():
            _dest, msg_id, t = line.split()
            self._arrivals.setdefault(msg_id, float(t))
        return self._arrivals

    async def wait_for(self, expected: dict[str, set[str]], timeout_s: float) -> bool:
        """Wait until every expected message id has arrived (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            have = set(self.arrivals)
            if all(ids <= have for ids in expected.values()):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)

    async def close(self, timeout_s: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        try:
            self.stats = json.loads((self.folder / "receivers.json").read_text())
        except (OSError, json.JSONDecodeError):
            self.stats = {}

    def stores(self) -> dict[str, SegmentStore]:
        """The receivers' stores, opened from their folders (read after :meth:`close`)."""
        from edged.link.wire import trusted_keys

        keys = trusted_keys([self.device_key])
        return {d: SegmentStore(self.folder / d, device_keys=keys) for d in self.dests}


if __name__ == "__main__":
    sys.exit(main())
