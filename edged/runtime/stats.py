"""Run statistics: counters, per-stage latency windows, and the periodic stats line."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


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
