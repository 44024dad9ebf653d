"""Run a replayed camera exactly as fast as the pipeline, without dropping a frame.

The daemon's frame queue drops its oldest frame when detection falls behind (right for a live
sensor). A simulated or benchmark run wants every scene frame processed, at the pipeline's own pace:
:class:`LockstepCamera` wraps a camera and lets it capture only while fewer than ``credits`` frames
are between capture and the sinks; :class:`CreditSink` (the last sink) gives a credit back for each
finished frame. With ``credits`` no larger than the frame queue, the queue can never overflow, and
capture (the camera thread) still overlaps processing (the stage thread).

The wrapper also measures the thread CPU time the camera spends rendering (``render_cpu_s``): on a
real device that work is the sensor's, so benchmarks can report the pipeline's cost without it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from edged.core.types import CapturedImage
from edged.stages.pipeline import FrameWork


class LockstepCamera:
    """A :class:`edged.hal.base.Camera` proxy whose ``capture`` waits for a credit (see module doc)."""

    def __init__(self, camera: Any, credits: int) -> None:
        if credits < 1:
            raise ValueError(f"credits must be >= 1, got {credits}")
        self._camera = camera
        self._credits = threading.Semaphore(credits)
        self.render_cpu_s = 0.0
        """Thread CPU seconds spent inside the wrapped camera's ``capture``."""
        self.render_ms: list[float] = []
        """Wall milliseconds of each capture, not counting the wait for a credit."""
        self.render_cpu_ms: list[float] = []
        """Thread CPU milliseconds of each capture."""
        self.commands: list[tuple[int, str, tuple[float, ...]]] = []
        """Exposure commands as ``(captures before it, method, args)``: replaying them on a fresh
        camera of the same seed renders the same frames again (benchmarks re-run the detector)."""
        self.captures = 0

    def capture(self) -> CapturedImage:
        self._credits.acquire()
        t0, w0 = time.thread_time(), time.perf_counter()
        try:
            image = self._camera.capture()
        except BaseException:
            self._credits.release()
            raise
        self.render_ms.append((time.perf_counter() - w0) * 1000.0)
        cpu = time.thread_time() - t0
        self.render_cpu_ms.append(cpu * 1000.0)
        self.render_cpu_s += cpu
        self.captures += 1
        return image

    def set_auto_exposure(self) -> None:
        self.commands.append((self.captures, "set_auto_exposure", ()))
        self._camera.set_auto_exposure()

    def set_manual_exposure(self, shutter_us: float, gain: float) -> None:
        self.commands.append((self.captures, "set_manual_exposure", (shutter_us, gain)))
        self._camera.set_manual_exposure(shutter_us, gain)

    def give_back(self) -> None:
        """One frame has left the pipeline: another may be captured."""
        self._credits.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._camera, name)


class CreditSink:
    """The last sink: returns a capture credit to the :class:`LockstepCamera` per finished frame."""

    def __init__(self, camera: LockstepCamera) -> None:
        self.camera = camera

    def consume(self, work: FrameWork) -> None:
        self.camera.give_back()

    def close(self) -> dict[str, Any]:
        return {"lockstep": {"captures": self.camera.captures, "render_cpu_s": round(self.camera.render_cpu_s, 3)}}
