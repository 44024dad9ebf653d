"""Run statistics: counters, per-stage latency windows, the device figures, and the periodic stats line."""

from __future__ import annotations

import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from edged.config import resolve_path

THERMAL_ZONES = Path("/sys/class/thermal")
"""Where Linux lists its thermal zones (``thermal_zone*/temp``, millidegrees Celsius)."""


def cpu_temp_c(zones: Path = THERMAL_ZONES) -> float | None:
    """The CPU temperature in °C: the zone of type ``cpu-thermal``/``*cpu*``/``soc*`` if there is one,
    else the first readable zone; ``None`` when the board reports none (a container, most PCs in a VM)."""
    readings: list[tuple[int, float]] = []
    for zone in sorted(zones.glob("thermal_zone*")):
        try:
            millideg = int((zone / "temp").read_text().strip())
            kind = (zone / "type").read_text().strip().lower() if (zone / "type").exists() else ""
        except (OSError, ValueError):
            continue
        rank = 0 if ("cpu" in kind or kind.startswith("soc") or kind == "x86_pkg_temp") else 1
        readings.append((rank, millideg / 1000.0))
    if not readings:
        return None
    return round(min(readings, key=lambda r: r[0])[1], 1)


def disk_free_bytes(folder: str | Path) -> int | None:
    """Free bytes for an unprivileged writer on the file system holding ``folder`` (its nearest
    existing parent); ``None`` when it cannot be told."""
    path = resolve_path(str(folder))
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


@cache
def edged_version() -> str:
    """The installed edged's version (``unknown`` when run from files that were never installed)."""
    try:
        return version("edged")
    except PackageNotFoundError:
        return "unknown"


def device_stats(data_dir: str | Path) -> dict[str, Any]:
    """``edged_version``, ``disk_free_bytes`` (under ``data_dir``) and ``cpu_temp_c`` (``None`` without a sensor)."""
    return {"edged_version": edged_version(), "disk_free_bytes": disk_free_bytes(data_dir), "cpu_temp_c": cpu_temp_c()}


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists, tuples as lists (for JSON)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


@dataclass
class RunStats:
    """Counters and latency samples of one daemon run (touched only from the event loop)."""

    window: int = 2048
    started: float = field(default_factory=time.monotonic)
    captured: int = 0
    processed: int = 0
    dropped: int = 0
    auto_frames: int = 0
    retimed: int = 0
    """Frames whose capture timestamp was not after the previous frame's (moved just after it)."""
    stage_ms: dict[str, deque[float]] = field(default_factory=dict)
    first_finished: float | None = None
    """Monotonic time the first frame came out of the last stage (``None`` before)."""
    _last_time: float = field(default_factory=time.monotonic)
    _last_processed: int = 0

    def record_stage_times(self, timings_ms: dict[str, float]) -> None:
        for name, ms in timings_ms.items():
            self.stage_ms.setdefault(name, deque(maxlen=self.window)).append(ms)

    def stage_summary(self) -> dict[str, dict[str, float]]:
        """p50/p95/mean per stage over the recent window."""
        out: dict[str, dict[str, float]] = {}
        for name, samples in self.stage_ms.items():
            if samples:
                a = np.fromiter(samples, dtype=np.float64)
                out[name] = {
                    "p50": round(float(np.percentile(a, 50)), 3),
                    "p95": round(float(np.percentile(a, 95)), 3),
                    "mean": round(float(a.mean()), 3),
                }
        return out

    def interval_fps(self) -> float:
        """Processed frames per second since the previous call."""
        now = time.monotonic()
        dt = now - self._last_time
        fps = (self.processed - self._last_processed) / dt if dt > 0 else 0.0
        self._last_time, self._last_processed = now, self.processed
        return fps

    def line(self, queue_depths: dict[str, tuple[int, int]], extra: dict[str, object] | None = None) -> str:
        """One human-readable stats line."""
        stages = " ".join(f"{k}={v['mean']:.1f}" for k, v in self.stage_summary().items())
        queues = " ".join(f"{k}={n}/{cap}" for k, (n, cap) in queue_depths.items())
        parts = [
            f"fps={self.interval_fps():.1f}",
            f"captured={self.captured}",
            f"processed={self.processed}",
            f"dropped={self.dropped}",
            f"queues[{queues}]",
            f"stage_ms[{stages}]",
        ]
        parts += [f"{k}={v}" for k, v in (extra or {}).items()]
        return " ".join(parts)
